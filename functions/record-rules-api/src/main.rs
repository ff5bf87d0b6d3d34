//! Lambda entry point of `record-rules-api`: wiring only; the handlers live in the library.

roomrec_http_edge::lambda_main!(record_rules_api::handle);
