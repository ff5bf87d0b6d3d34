//! `roomrec-admin`: operator commands against the configured tables.
//!
//! - `create-credential --account NAME [--key-id K --secret S]` prints `{"key_id","secret"}`
//!   as its last line; with `--key-id`/`--secret` it registers that pair again (local stacks
//!   start with empty tables and keep the developer's saved credential working).
//! - `set-quotas --account NAME [--active-jobs N] [--mix-participants N] [--waiting-jobs N]`
//!   sets the account's quotas (others keep their values; never set, a quota takes its
//!   default) and prints the limits that now apply as its last line.
//! - `seed-fixtures [--local]` writes the fixtures the `events/` replays use, into a local
//!   stack only (AWS_ENDPOINT_URL on loopback; `--local` for an emulator elsewhere).
//! - `sweep [--every SECONDS]` runs the sweeper once, or every SECONDS until stopped (the
//!   local stack's stand-in for the scheduled `sweeper` function).

use std::time::Duration;

use anyhow::{bail, Context};
use roomrec_adapters::{init_cli_tracing, init_tracing, sweeper, Config};
use roomrec_admin::Admin;
use roomrec_domain::error::error_chain;
use roomrec_domain::ids::{AccountId, KeyId};
use roomrec_domain::quota::QuotaSettings;

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `sweep` stands in for the sweeper service, whose logs are JSON; the rest are for people.
    if args.first().is_some_and(|command| command == "sweep") {
        init_tracing();
    } else {
        init_cli_tracing();
    }
    match args.first().map(String::as_str) {
        Some("create-credential") => {
            let admin = Admin::from_env().await?;
            let account = AccountId::try_from(flag(&args, "--account").context("--account NAME is required")?)?;
            let issued = match (flag(&args, "--key-id"), flag(&args, "--secret")) {
                (Some(key_id), Some(secret)) => {
                    let key_id = KeyId::parse(&key_id).context("--key-id is not a key id")?;
                    admin.access.register_credential(account, key_id, &secret).await?
                }
                (None, None) => admin.access.issue_credential(account).await?,
                _ => bail!("--key-id and --secret go together"),
            };
            println!("{}", serde_json::to_string(&issued)?);
        }
        Some("set-quotas") => {
            let admin = Admin::from_env().await?;
            let account = AccountId::try_from(flag(&args, "--account").context("--account NAME is required")?)?;
            let number = |name: &str| -> anyhow::Result<Option<u32>> {
                flag(&args, name).map(|v| v.parse().with_context(|| format!("{name} takes a whole number"))).transpose()
            };
            let changes = QuotaSettings {
                active_jobs: number("--active-jobs")?,
                mix_participants: number("--mix-participants")?,
                waiting_jobs: number("--waiting-jobs")?,
            };
            let limits = roomrec_admin::set_quotas(&admin, &account, changes).await?;
            println!("{}", serde_json::to_string(&limits)?);
        }
        Some("seed-fixtures") => {
            let mut admin = Admin::from_env().await?;
            admin.local |= args.iter().any(|a| a == "--local");
            roomrec_admin::seed(&admin).await?;
            println!("fixtures written: app {}, rule {}", roomrec_admin::APP_ID, roomrec_admin::RULE_ID);
        }
        Some("sweep") => {
            let every = flag(&args, "--every").map(|s| s.parse()).transpose().context("--every takes seconds")?;
            let sweeper = sweeper(&Config::from_env()?).await;
            loop {
                match sweeper.sweep().await {
                    Ok(swept) => tracing::info!(active = swept.active, requeued = swept.requeued.len(), "swept"),
                    Err(err) => tracing::warn!(error = %error_chain(&err), "the sweep failed; the next one retries"),
                }
                let Some(every) = every else { break };
                tokio::time::sleep(Duration::from_secs(every)).await;
            }
        }
        _ => bail!(
            "usage: roomrec-admin create-credential --account NAME [--key-id K --secret S] \
             | set-quotas --account NAME [--active-jobs N] [--mix-participants N] [--waiting-jobs N] \
             | seed-fixtures [--local] | sweep [--every SECONDS]"
        ),
    }
    Ok(())
}
