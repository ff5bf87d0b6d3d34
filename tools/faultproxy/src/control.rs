//! The control API, plain HTTP/1.1 on its own port:
//! - `POST /mode/{pass|refuse|reset|stall}[?for=SECS]` switches mode, back to `pass` after SECS
//!   (fractions allowed) when given, and answers `{"mode":..,"revert_after_secs":..}` once the
//!   listener has followed;
//! - `GET /stats` answers the [`Stats`](crate::Stats) as JSON.
//!
//! Errors answer `{"error_code","error_msg"}` with 400, 404 or 500.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode, Uri};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::{FaultProxy, ListenerStuck, Mode, UnknownMode};

/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A mode change as `POST /mode/NAME?for=SECS` asks for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModeChange {
    /// The mode to switch to.
    pub mode: Mode,
    /// When to go back to `pass`, if ever.
    pub revert_after: Option<Duration>,
}

/// A control request that cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such route.
    #[error("no route for {method} {path}")]
    NotFound { method: Method, path: String },
    /// The mode name is not one.
    #[error(transparent)]
    Mode(#[from] UnknownMode),
    /// `for` is not a number of seconds.
    #[error("`for` takes seconds, e.g. for=60 or for=0.5, not {0:?}")]
    RevertAfter(String),
    /// The listener did not follow.
    #[error(transparent)]
    Listener(#[from] ListenerStuck),
}

impl ControlError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Mode(_) | Self::RevertAfter(_) => StatusCode::BAD_REQUEST,
            Self::Listener(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Mode(_) => "unknown_mode",
            Self::RevertAfter(_) => "invalid_for",
            Self::Listener(_) => "listener_stuck",
        }
    }
}

impl ModeChange {
    /// Parses the mode name of the path and the query string (`for=SECS`; other keys ignored).
    pub fn parse(name: &str, query: Option<&str>) -> Result<Self, ControlError> {
        let mode = name.parse()?;
        let revert_after = query
            .into_iter()
            .flat_map(|query| query.split('&'))
            .find_map(|pair| pair.strip_prefix("for="))
            .map(|secs| {
                let invalid = || ControlError::RevertAfter(secs.to_owned());
                let secs: f64 = secs.parse().map_err(|_| invalid())?;
                Duration::try_from_secs_f64(secs).map_err(|_| invalid())
            })
            .transpose()?;
        Ok(Self { mode, revert_after })
    }
}

/// Serves the control API of `proxy` on `listener`, until the runtime stops.
pub async fn serve_control(listener: TcpListener, proxy: FaultProxy) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "control accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let proxy = proxy.clone();
                let (parts, _body) = req.into_parts();
                async move { Ok::<_, Infallible>(answer(&proxy, &parts.method, &parts.uri).await) }
            });
            if let Err(err) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %err, "control connection closed with an error");
            }
        });
    }
}

/// Answers one control request.
async fn answer(proxy: &FaultProxy, method: &Method, uri: &Uri) -> Response<Full<Bytes>> {
    let (status, body) = match route(proxy, method, uri).await {
        Ok(body) => (StatusCode::OK, body),
        Err(err) => {
            tracing::warn!(error = %err, "control request refused");
            (err.status(), json!({ "error_code": err.code(), "error_msg": err.to_string() }))
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

async fn route(proxy: &FaultProxy, method: &Method, uri: &Uri) -> Result<Value, ControlError> {
    match (method, uri.path()) {
        (&Method::POST, path) if path.starts_with("/mode/") => {
            let change = ModeChange::parse(&path["/mode/".len()..], uri.query())?;
            proxy.set_mode(change.mode, change.revert_after).await?;
            Ok(json!({ "mode": change.mode, "revert_after_secs": change.revert_after.map(|d| d.as_secs_f64()) }))
        }
        (&Method::GET, "/stats") => Ok(json!(proxy.stats())),
        (method, path) => Err(ControlError::NotFound { method: method.clone(), path: path.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_change_parses_a_mode_without_for() {
        let change = ModeChange::parse("stall", None).unwrap();
        assert_eq!(change, ModeChange { mode: Mode::Stall, revert_after: None });
    }

    #[test]
    fn mode_change_parses_fractional_seconds_among_other_keys() {
        let change = ModeChange::parse("reset", Some("x=1&for=0.5")).unwrap();
        assert_eq!(change.revert_after, Some(Duration::from_millis(500)));
    }

    #[test]
    fn mode_change_rejects_an_unknown_mode() {
        assert!(matches!(ModeChange::parse("drop", None), Err(ControlError::Mode(_))));
    }

    #[test]
    fn mode_change_rejects_a_negative_or_non_numeric_for() {
        for secs in ["-1", "soon", "NaN", ""] {
            let query = format!("for={secs}");
            assert!(matches!(ModeChange::parse("pass", Some(&query)), Err(ControlError::RevertAfter(_))), "{secs}");
        }
    }
}
