//! Errors as the API shows them: a status and `{"error_code", "error_msg"}`. Causes are logged
//! here, once, and never sent to the client.

use lambda_http::{Body, Response};
use roomrec_domain::error::error_chain;
use roomrec_domain::{Invalid, UseCaseError};
use serde::de::DeserializeOwned;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 401: missing or wrong credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "UNAUTHORIZED",
            "authorization: HTTP Basic credentials (key_id:secret) or an X-Auth-Token are missing or wrong",
        )
    }

    /// 401 from `POST /v3/auth/tokens`: the key id and secret in the body do not match.
    pub fn wrong_password() -> Self {
        Self::new(
            401,
            "UNAUTHORIZED",
            "auth.identity.password.user: the name (key id) and password (secret) do not match a credential",
        )
    }

    /// 503: the deployment issues no tokens (no `TokenKey`).
    pub fn tokens_disabled() -> Self {
        Self::new(503, "SERVICE_UNAVAILABLE", "tokens are not enabled in this deployment (TokenKey); use HTTP Basic")
    }

    /// 413: the body is longer than [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES).
    pub fn payload_too_large() -> Self {
        Self::new(413, "PAYLOAD_TOO_LARGE", format!("body: must be at most {} bytes", crate::MAX_BODY_BYTES))
    }

    /// 415: a body that is not declared `application/json`, which is also what a cross-site
    /// form can send (`text/plain`, `application/x-www-form-urlencoded`, `multipart/form-data`).
    pub fn unsupported_media_type() -> Self {
        Self::new(415, "UNSUPPORTED_MEDIA_TYPE", "content-type: a request body must be application/json")
    }

    /// 404: no handler for this method and path.
    pub fn unknown_route() -> Self {
        Self::new(404, "ROUTE_NOT_FOUND", "no such route")
    }

    /// 500: something of ours failed; `cause` goes to the log only.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %error_chain(cause), "internal error");
        Self::new(500, "INTERNAL_ERROR", "internal error")
    }

    /// The response for this error.
    pub fn into_response(self, route: &str) -> Response<Body> {
        if self.status >= 500 {
            tracing::warn!(route, status = self.status, code = self.code, "request failed");
        }
        let body = serde_json::json!({ "error_code": self.code, "error_msg": self.message });
        let mut builder = Response::builder().status(self.status).header("content-type", "application/json");
        if self.status == 401 {
            builder = builder.header("www-authenticate", "Basic realm=\"roomrec\"");
        }
        builder.body(Body::Text(body.to_string())).unwrap_or_default()
    }
}

impl From<Invalid> for ApiError {
    fn from(err: Invalid) -> Self {
        Self::new(400, "INVALID_PARAMETER", err.to_string())
    }
}

impl From<UseCaseError> for ApiError {
    fn from(err: UseCaseError) -> Self {
        match err {
            UseCaseError::Invalid(invalid) => invalid.into(),
            UseCaseError::NotFound { .. } => Self::new(404, "NOT_FOUND", err.to_string()),
            UseCaseError::Conflict(message) => Self::new(409, "CONFLICT", message),
            UseCaseError::Expired { .. } => Self::new(410, "EXPIRED", err.to_string()),
            UseCaseError::QuotaExceeded(_) => Self::new(429, "QUOTA_EXCEEDED", err.to_string()),
            UseCaseError::Store(_) => Self::internal(&err),
            UseCaseError::Queue(_) => {
                tracing::error!(error = %error_chain(&err), "job queue unavailable");
                Self::new(503, "SERVICE_UNAVAILABLE", "the job queue is unavailable; try again")
            }
        }
    }
}

/// Parses JSON, turning serde's message into one that starts with the failing field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(400, "MALFORMED_JSON", "body: a JSON object is required"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(400, "MALFORMED_JSON", format!("body: malformed JSON ({inner})"));
        }
        let (field, reason) = describe(&path, &inner.to_string());
        ApiError::new(400, "INVALID_PARAMETER", format!("{field}: {reason}"))
    })
}

/// Splits serde's message into the full field path and the reason.
fn describe(path: &str, message: &str) -> (String, String) {
    // serde appends " at line L column C"; the field path says more.
    let message = message.rsplit_once(" at line ").map_or(message, |(m, _)| m);
    let join = |parent: &str, name: &str| if parent == "." { name.to_owned() } else { format!("{parent}.{name}") };
    if let Some(name) = message.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
        return (join(path, name), "is required".to_owned());
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((name, expected)) = rest.split_once("`, ") {
            // serde_path_to_error already includes the unknown field in the path.
            let field = if path.ends_with(name) { path.to_owned() } else { join(path, name) };
            return (field, format!("unknown field; {expected}"));
        }
    }
    // Our own newtypes already say "field: reason"; keep the reason, use serde's full path.
    let reason = match message.split_once(": ") {
        Some((head, reason)) if !head.contains(' ') => reason,
        _ => message,
    };
    let field = if path == "." { "body".to_owned() } else { path.to_owned() };
    (field, reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
        room: roomrec_domain::ids::RoomId,
    }

    fn message(json: &str) -> String {
        parse_json::<Outer>(json.as_bytes()).unwrap_err().message
    }

    #[test]
    fn wrong_types_name_the_nested_field() {
        assert_eq!(message(r#"{"inner":{"count":"x","room":"r"}}"#).split(':').next(), Some("inner.count"));
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        assert_eq!(message(r#"{"inner":{"room":"r"}}"#), "inner.count: is required");
        assert!(message(r#"{"inner":{"count":1,"room":"r","extra":1}}"#).starts_with("inner.extra: unknown field"));
    }

    #[test]
    fn newtype_rejections_keep_their_reason_under_the_full_path() {
        assert_eq!(
            message(r#"{"inner":{"count":1,"room":"a b"}}"#),
            "inner.room: may contain only letters, digits, '_' and '-'"
        );
    }

    #[test]
    fn a_queue_that_refuses_a_job_answers_503_and_a_store_failure_500_without_their_causes() {
        let queue = roomrec_domain::error::QueueError("sqs: connection refused to 10.1.2.3".into());
        let err = ApiError::from(UseCaseError::Queue(queue));
        assert_eq!((err.status, err.code), (503, "SERVICE_UNAVAILABLE"));
        assert!(!err.message.contains("10.1.2.3"), "{}", err.message);
        let store = roomrec_domain::error::StoreError::Backend("dynamodb: throttled".into());
        let err = ApiError::from(UseCaseError::Store(store));
        assert_eq!((err.status, err.message.as_str()), (500, "internal error"));
    }

    #[test]
    fn malformed_json_is_its_own_error() {
        let err = parse_json::<Outer>(b"{\"inner\": ").unwrap_err();
        assert_eq!((err.status, err.code), (400, "MALFORMED_JSON"));
    }
}
