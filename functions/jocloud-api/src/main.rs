//! Lambda entry point of `jocloud-api`: wiring only; the handlers live in the library.

roomrec_http_edge::lambda_main!(jocloud_api::handle);
