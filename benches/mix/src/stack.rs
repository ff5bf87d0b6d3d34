//! What the benchmark needs of the local stack (`stack.py run`): nginx-rtmp's URL, and an
//! app whose minted publish URLs the publish hook accepts (streams named
//! `<app_id>.<room_id>.<user_id>`), with its room roster to see that every participant is
//! publishing. The HTTP calls run on a
//! current-thread runtime, so nothing of it runs while a side is measured.

use anyhow::{Context, Result};
use roomrec_testkit::api::Api;
use roomrec_testkit::env;

/// The stack's gateway, signed in with its development credential, and its nginx-rtmp.
#[derive(Debug)]
pub struct Stack {
    runtime: tokio::runtime::Runtime,
    api: Api,
    /// `rtmp://127.0.0.1:<port>/live`.
    pub rtmp_url: String,
}

impl Stack {
    /// The stack `stack.py run` started, from its environment.
    pub fn from_env() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the HTTP client's runtime")?;
        Ok(Self { runtime, api: Api::from_env()?, rtmp_url: env::stack_var(env::RTMP_URL)? })
    }

    /// Creates an app named `name`; returns its id.
    pub fn create_app(&self, name: &str) -> Result<String> {
        Ok(self.runtime.block_on(self.api.create_app(name))?)
    }

    /// A minted URL that publishes `user` into `room` of `app`.
    pub fn publish_url(&self, app: &str, room: &str, user: &str) -> Result<String> {
        Ok(self.runtime.block_on(self.api.publish_url(app, room, user))?)
    }

    /// How many streams the room's roster lists.
    pub fn roster_len(&self, app: &str, room: &str) -> Result<usize> {
        Ok(self.runtime.block_on(self.api.roster_len(app, room))?)
    }
}
