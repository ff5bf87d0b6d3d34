//! Lambda entry point of `record-callback-api`: wiring only; the handlers live in the library.

roomrec_http_edge::lambda_main!(record_callback_api::handle);
