//! Lambda entry point of `sweeper`, run every minute by an EventBridge schedule: wiring only;
//! the use case is `roomrec_domain::usecases::Sweeper`.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use roomrec_adapters::{init_tracing, sweeper, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let sweeper = sweeper(&Config::from_env()?).await;
    let sweeper = &sweeper;
    run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let swept = sweeper.sweep().await?;
        tracing::info!(active = swept.active, requeued = swept.requeued.len(), failed = swept.failed.len(), "swept");
        Ok::<_, Error>(())
    }))
    .await
}
