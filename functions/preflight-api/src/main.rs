//! Lambda entry point of `preflight-api`: wiring only; the handler lives in the library.

roomrec_http_edge::lambda_main!(preflight_api::handle);
