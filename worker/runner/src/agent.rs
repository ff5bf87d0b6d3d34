//! [`TaskProtection`] through the ECS container agent's endpoint,
//! `PUT ${ECS_AGENT_URI}/task-protection/v1/state`, which calls ECS `UpdateTaskProtection`
//! with the task role's credentials.
//! <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html>

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::protection::{ProtectionError, TaskProtection};

/// The endpoint's path under `ECS_AGENT_URI`.
const STATE_PATH: &str = "/task-protection/v1/state";
/// Longest wait for the agent's answer: it gives ECS 4 s itself (amazon-ecs-agent
/// `ecsCallTimeout`), and a call that takes longer is retried.
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most of an unexpected answer kept for the log.
const MAX_LOGGED_BODY_BYTES: usize = 500;

/// A call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No answer (refused, reset, timed out).
    #[error("the ECS agent could not be reached")]
    Unreachable(#[source] reqwest::Error),
    /// The agent or ECS refused: its `failure` or `error` object (e.g. `TASK_NOT_VALID` for a
    /// task outside a service, `AccessDeniedException` without `ecs:UpdateTaskProtection`).
    #[error("the ECS agent refused: {0}")]
    Refused(String),
    /// An answer that is none of the documented ones.
    #[error("the ECS agent answered {status} with no protection: {body}")]
    Unexpected { status: u16, body: String },
}

/// The agent's task protection endpoint.
pub struct EcsAgent {
    http: reqwest::Client,
    url: String,
}

impl EcsAgent {
    /// The endpoint of the agent at `agent_uri` (`ECS_AGENT_URI`).
    pub fn new(agent_uri: &str) -> Result<Self, reqwest::Error> {
        // The agent is on the task's link-local address: never through a proxy.
        let http = reqwest::Client::builder().no_proxy().timeout(AGENT_TIMEOUT).build()?;
        Ok(Self { http, url: format!("{}{STATE_PATH}", agent_uri.trim_end_matches('/')) })
    }

    async fn put(&self, body: Value) -> Result<(), AgentError> {
        let response = self.http.put(&self.url).json(&body).send().await.map_err(AgentError::Unreachable)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(AgentError::Unreachable)?;
        outcome(status, &body)
    }
}

/// What the agent's answer says: a 2xx with a `protection` object is success; a `failure`
/// (sent with 200) or an `error` (with 4xx/5xx) is a refusal.
fn outcome(status: u16, body: &[u8]) -> Result<(), AgentError> {
    let answer: Value = serde_json::from_slice(body).unwrap_or_default();
    for refusal in ["failure", "error"] {
        if let Some(why) = answer.get(refusal).filter(|why| !why.is_null()) {
            return Err(AgentError::Refused(why.to_string()));
        }
    }
    if (200..300).contains(&status) && answer.get("protection").is_some_and(Value::is_object) {
        return Ok(());
    }
    let body = String::from_utf8_lossy(&body[..body.len().min(MAX_LOGGED_BODY_BYTES)]).into_owned();
    Err(AgentError::Unexpected { status, body })
}

fn port_error(err: AgentError) -> ProtectionError {
    ProtectionError(Box::new(err))
}

#[async_trait]
impl TaskProtection for EcsAgent {
    async fn protect(&self, minutes: u32) -> Result<(), ProtectionError> {
        self.put(json!({ "ProtectionEnabled": true, "ExpiresInMinutes": minutes })).await.map_err(port_error)
    }

    async fn unprotect(&self) -> Result<(), ProtectionError> {
        self.put(json!({ "ProtectionEnabled": false })).await.map_err(port_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The answers' shapes are the agent's (amazon-ecs-agent, `TaskProtectionResponse`).
    #[test]
    fn a_2xx_with_the_tasks_protection_is_success() {
        let body = br#"{"protection":{"ExpirationDate":"2026-11-29T10:00:00Z","ProtectionEnabled":true,"TaskArn":"arn:aws:ecs:eu-west-1:123456789012:task/roomrec/0f1e"}}"#;
        assert!(outcome(200, body).is_ok());
    }

    #[test]
    fn a_failure_sent_with_200_is_a_refusal() {
        let body = br#"{"failure":{"Arn":"arn:aws:ecs:eu-west-1:123456789012:task/roomrec/0f1e","Reason":"TASK_NOT_VALID","Detail":null}}"#;
        let err = outcome(200, body).unwrap_err();
        assert!(matches!(&err, AgentError::Refused(why) if why.contains("TASK_NOT_VALID")), "{err}");
    }

    #[test]
    fn a_5xx_or_4xx_error_is_a_refusal_and_an_empty_answer_is_unexpected() {
        let body = br#"{"error":{"Code":"AccessDeniedException","Message":"not authorized to perform: ecs:UpdateTaskProtection"},"requestID":"r1"}"#;
        assert!(matches!(outcome(400, body), Err(AgentError::Refused(why)) if why.contains("AccessDenied")));
        assert!(matches!(outcome(500, b""), Err(AgentError::Unexpected { status: 500, .. })));
        assert!(matches!(outcome(200, b""), Err(AgentError::Unexpected { status: 200, .. })));
    }

    #[test]
    fn the_state_url_is_under_the_agent_uri() {
        let agent = EcsAgent::new("http://169.254.170.2/api/0f1e-1234/").unwrap();
        assert_eq!(agent.url, "http://169.254.170.2/api/0f1e-1234/task-protection/v1/state");
    }
}
