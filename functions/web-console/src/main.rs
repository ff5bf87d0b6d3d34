//! Lambda entry point of `web-console`: wiring only; the files are served by the library.

roomrec_http_edge::lambda_main!(web_console::handle);
