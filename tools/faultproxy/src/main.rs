//! `roomrec-faultproxy --listen 127.0.0.1:0 --upstream 127.0.0.1:5000 [--control 127.0.0.1:0]`:
//! prints `{"listen":..,"control":..}` as one line on stdout, then proxies until stopped. Logs go
//! to stderr (`RUST_LOG`, default info). The modes and the control API are in the library docs.

use std::net::SocketAddr;

use anyhow::Context;
use roomrec_faultproxy::{serve_control, FaultProxy};
use tokio::net::TcpListener;

const USAGE: &str = "usage: roomrec-faultproxy --listen ADDR --upstream ADDR [--control ADDR]";

/// The address given after `name`, or `default`.
fn addr(args: &[String], name: &str, default: Option<&str>) -> anyhow::Result<SocketAddr> {
    let value = args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str).or(default);
    let value = value.with_context(|| format!("{name} is required\n{USAGE}"))?;
    value.parse().with_context(|| format!("{name} takes IP:PORT, not {value:?}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // stdout carries only the addresses line.
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::io::stderr).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = addr(&args, "--listen", None)?;
    let upstream = addr(&args, "--upstream", None)?;
    let control = addr(&args, "--control", Some("127.0.0.1:0"))?;
    let proxy = FaultProxy::start(listen, upstream).await.with_context(|| format!("listening on {listen}"))?;
    let control = TcpListener::bind(control).await.with_context(|| format!("listening on {control}"))?;
    let addresses = serde_json::json!({
        "listen": proxy.listen_addr().to_string(),
        "control": control.local_addr()?.to_string(),
    });
    // Rust's stdout is line-buffered, so the line reaches a pipe at once.
    println!("{addresses}");
    tracing::info!(%upstream, "proxying");
    tokio::select! {
        () = serve_control(control, proxy) => {}
        stopped = tokio::signal::ctrl_c() => stopped.context("waiting for Ctrl-C")?,
    }
    Ok(())
}
