//! Lambda entry point of `individual-jobs-api`: wiring only; the handlers live in the library.

roomrec_http_edge::lambda_main!(individual_jobs_api::handle);
