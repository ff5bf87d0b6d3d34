//! Lambda entry point of `jocloud-api`: wiring only; the handlers live in the library.

use std::convert::Infallible;

use lambda_http::{run, service_fn, Error, Request};
use roomrec_adapters::{init_tracing, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(move |req: Request| async move { Ok::<_, Infallible>(jocloud_api::handle(deps, req).await) })).await
}
