//! Lambda entry point of `callback-delivery`: wiring only; the handler lives in the library.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use roomrec_adapters::{deliverer, init_tracing, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let deliverer = deliverer(&config).await?;
    let deliverer = &deliverer;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(callback_delivery::handle(deliverer, event.payload).await)
    }))
    .await
}
