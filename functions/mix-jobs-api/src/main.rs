//! Lambda entry point of `mix-jobs-api`: wiring only; the handlers live in the library.

roomrec_http_edge::lambda_main!(mix_jobs_api::handle);
