//! `POST /v3/auth/tokens`: IAM's "Obtaining an IAM User Token (Using a Password)" for roomrec's
//! credentials — the key id as the user name, the secret as the password. The credential is in
//! the body, so the route needs no other authentication and ignores the `Authorization`
//! header (Huawei Cloud's SDKs sign even this request with their configured AK/SK).

use lambda_http::{Body, Request, Response};
use roomrec_domain::token::{PasswordLogin, TokenRequest};
use roomrec_domain::usecases::{Access, IssuedToken, TokenError};
use roomrec_domain::UseCaseError;
use roomrec_http_edge::{body, ApiError, ApiResult};
use serde_json::json;

/// The route key tokens are issued on.
pub(crate) const ROUTE: &str = "POST /v3/auth/tokens";

/// The response header carrying the token, as IAM's.
const SUBJECT_TOKEN_HEADER: &str = "X-Subject-Token";

/// Times as IAM writes them, e.g. `2020-01-04T09:05:22.701000Z`.
const IAM_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Answers a token request: 201 with the token, 400 naming a malformed field, 401 when the
/// key id and secret do not match.
pub(crate) async fn issue(access: &Access, req: &Request) -> Response<Body> {
    let result = async {
        let login = PasswordLogin::try_from(body::<TokenRequest>(req)?)?;
        let issued = access.issue_token(&login).await.map_err(|err| match err {
            TokenError::WrongCredentials => ApiError::wrong_password(),
            TokenError::Disabled => ApiError::tokens_disabled(),
            TokenError::Store(err) => UseCaseError::from(err).into(),
        })?;
        tracing::Span::current().record("account", issued.account_id.as_str());
        created(&issued)
    }
    .await;
    result.unwrap_or_else(|err| err.into_response(ROUTE))
}

/// The 201 answer: the token in `X-Subject-Token`, a body shaped like IAM's.
fn created(issued: &IssuedToken) -> ApiResult {
    let key_id = issued.claims.key_id.as_str();
    let account = issued.account_id.as_str();
    let body = json!({
        "token": {
            "methods": ["password"],
            "issued_at": issued.claims.issued().format(IAM_TIME_FORMAT).to_string(),
            "expires_at": issued.claims.expires().format(IAM_TIME_FORMAT).to_string(),
            "user": { "id": key_id, "name": key_id, "domain": { "id": account, "name": account } },
        }
    });
    Response::builder()
        .status(201)
        .header("content-type", "application/json")
        .header(SUBJECT_TOKEN_HEADER, &issued.token)
        .body(Body::Text(body.to_string()))
        .map_err(|e| ApiError::internal(&e))
}
