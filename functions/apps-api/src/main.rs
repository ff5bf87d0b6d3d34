//! Lambda entry point of `apps-api`: wiring only; the handlers live in the library.

roomrec_http_edge::lambda_main!(apps_api::handle);
