//! `bench-api [--apps-api target/release/apps-api]`: the API benchmark `make bench-api` runs
//! inside the local stack (infra/local/bench-api.sh). Prints two Markdown tables on stdout:
//! per-route latency through the gateway beside the same DynamoDB/SQS calls made directly on
//! moto, and the cold start of the apps-api binary. Progress goes to stderr.

mod cold_start;
mod moto;
mod routes;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use base64::Engine;
use moto::Moto;
use roomrec_adapters::{Deps, DynamoStore};
use roomrec_domain::ids::AccountId;
use roomrec_domain::ports::QuotaStore;
use roomrec_domain::quota::QuotaSettings;
use roomrec_testkit::api::Api;
use roomrec_testkit::env;
use roomrec_testkit::markdown::{header, row};
use roomrec_testkit::stats::{ms, ms_diff, Sample};
use routes::{Fixture, Route};
use serde_json::Value;

/// Timed requests per route (and timed iterations of its moto-only calls).
const PER_ROUTE: usize = 250;
/// Untimed requests per route before the timed ones.
const WARMUP: usize = 20;
/// Fresh processes in the cold-start measurement.
const COLD_STARTS: usize = 10;
/// The event the cold-started function answers; its credential is replaced by a real one.
const LIST_APPS_EVENT: &str = include_str!("../../../events/apps-api/02-list-apps.json");

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let apps_api = args.iter().position(|a| a == "--apps-api").and_then(|i| args.get(i + 1));
    let apps_api = PathBuf::from(apps_api.map_or("target/release/apps-api", String::as_str));
    ensure!(apps_api.is_file(), "{} is missing: `cargo build --release -p apps-api`", apps_api.display());
    let base = env::stack_var(env::HTTP_URL)?;
    let deps = Deps::from_env().await.context("reading the stack's configuration")?;

    println!("{}\n", route_latency(&deps, &base).await?);
    println!("{}", cold_start(&deps, &base, &apps_api).await?);
    Ok(())
}

/// A gateway client signed in as a new account named `name`, whose job quotas are lifted:
/// every job the benchmark creates stays INIT (no worker runs), past the default 50.
async fn sign_in(deps: &Deps, base: &str, name: &str) -> Result<Api> {
    let account = AccountId::try_from(format!("{name}-{}", std::process::id())).context("account name")?;
    let store =
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await), deps.config.tables.clone());
    let lifted = QuotaSettings { active_jobs: Some(1_000_000), waiting_jobs: Some(1_000_000), mix_participants: None };
    store.put_quotas(&account, &lifted).await.context("lifting the account's quotas")?;
    Ok(Api::issue(&deps.access, base, account).await?)
}

/// The per-route table: each route through the gateway beside its calls on moto alone.
async fn route_latency(deps: &Deps, base: &str) -> Result<String> {
    let gateway = sign_in(deps, base, "bench-routes").await?;
    let fixture = routes::fixture(&gateway).await.context("creating the fixture through the gateway")?;
    let moto = Moto::new(&deps.config, &fixture).await.context("reading the fixture's items")?;
    let mut lines = vec![
        format!(
            "## Per-route latency ({PER_ROUTE} sequential requests per route over one keep-alive connection, after {WARMUP} \
             warm-up; each request alternates with one moto-only iteration)\n"
        ),
        header(&["route", "n", "gateway p50 ms", "gateway p99 ms", "moto-only p50 ms", "moto-only p99 ms", "our overhead p50 ms"]),
    ];
    for route in Route::ALL {
        eprintln!("bench-api: {}", route.label());
        let (through, direct) = time_route(&gateway, &moto, &fixture, route).await.with_context(|| route.label())?;
        lines.push(row(&[
            route.label().to_owned(),
            through.len().to_string(),
            ms(through.percentile(50.0)),
            ms(through.percentile(99.0)),
            ms(direct.percentile(50.0)),
            ms(direct.percentile(99.0)),
            ms_diff(through.percentile(50.0), direct.percentile(50.0)),
        ]));
    }
    Ok(lines.join("\n"))
}

/// Times `route` through the gateway and its calls on moto alone, alternating one request with
/// one moto-only iteration so that both see the same moto state and the same machine load.
async fn time_route(gateway: &Api, moto: &Moto, fixture: &Fixture, route: Route) -> Result<(Sample, Sample)> {
    let (method, path, body) = routes::request(route, fixture);
    let (mut through, mut direct) = (Vec::with_capacity(PER_ROUTE), Vec::with_capacity(PER_ROUTE));
    for i in 0..WARMUP + PER_ROUTE {
        let start = Instant::now();
        gateway.call(method.clone(), &path, body.as_ref()).await?;
        let middle = Instant::now();
        moto.once(route).await.context("moto only")?;
        if i >= WARMUP {
            through.push(middle - start);
            direct.push(middle.elapsed());
        }
    }
    Ok((Sample::new(through)?, Sample::new(direct)?))
}

/// The cold-start table: `apps-api` answering `GET /v2/apps` for an account with one app.
async fn cold_start(deps: &Deps, base: &str, apps_api: &Path) -> Result<String> {
    let gateway = sign_in(deps, base, "bench-cold").await?;
    let app_id = gateway.create_app("cold").await?;
    let event = list_apps_event(&gateway)?;
    eprintln!("bench-api: cold start of {} ({COLD_STARTS} processes)", apps_api.display());
    let runs = cold_start::measure(apps_api, &event, COLD_STARTS, |body| check_list_apps(body, &app_id)).await?;
    let first_next = Sample::new(runs.iter().map(|r| r.first_next).collect())?;
    let answered = Sample::new(runs.iter().map(|r| r.answered).collect())?;
    let mut lines = vec![
        format!("## Cold start of {} ({COLD_STARTS} fresh processes, emulated Runtime API)\n", apps_api.display()),
        header(&["from process start to", "n", "min ms", "p50 ms", "max ms"]),
    ];
    for (what, sample) in
        [("first GET /invocation/next (init done)", &first_next), ("response posted (first event answered)", &answered)]
    {
        let cells = [ms(sample.min()), ms(sample.percentile(50.0)), ms(sample.max())];
        lines.push(row(&[&[what.to_owned(), sample.len().to_string()][..], &cells[..]].concat()));
    }
    Ok(lines.join("\n"))
}

/// events/apps-api/02-list-apps.json with the gateway client's credential.
fn list_apps_event(gateway: &Api) -> Result<String> {
    let mut event: Value = serde_json::from_str(LIST_APPS_EVENT).context("events/apps-api/02-list-apps.json")?;
    let (key_id, secret) = gateway.credential();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{key_id}:{secret}"));
    event["headers"]["authorization"] = Value::String(format!("Basic {token}"));
    Ok(event.to_string())
}

/// The function's answer must be a 200 whose body lists exactly the account's app.
fn check_list_apps(response: &str, app_id: &str) -> Result<()> {
    let response: Value = serde_json::from_str(response).context("the response is not JSON")?;
    ensure!(response["statusCode"] == 200, "statusCode is not 200");
    let body = response["body"].as_str().context("the response has no body")?;
    let body: Value = serde_json::from_str(body).context("the body is not JSON")?;
    let apps = body["apps"].as_array().context("the body has no apps list")?;
    ensure!(apps.len() == 1 && apps[0]["app_id"] == app_id, "the apps list is not [{app_id}]");
    Ok(())
}
