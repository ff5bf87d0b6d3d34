//! Lambda entry point of `rooms-api`: wiring only; the handlers live in the library.

roomrec_http_edge::lambda_main!(rooms_api::handle);
