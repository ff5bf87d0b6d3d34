//! Room rosters: `/v2/apps/{app_id}/rooms/{room_id}/streams[/{user_id}]`, and the hook a
//! media server calls when a stream starts or stops publishing (nginx-rtmp `on_publish` /
//! `on_publish_done`).
//!
//! A participant may have a camera and a screen share in a room at once: `PUT` names the
//! stream's `video_type` in its body, `GET` and `DELETE` in the `video_type` query parameter
//! (CAMERASTREAM when absent).
//!
//! Publishers get their URL from `POST .../streams/{user_id}/publish-url`:
//! `ROOMREC_MEDIA_PUBLISH_BASE/<app_id>.<room_id>.<user_id>[.SUBSTREAM]?video_type=…&expires=…&signature=…`.
//! nginx-rtmp hands the query to the hook as form fields beside the stream key (`name`); the
//! stream is then pulled from `ROOMREC_MEDIA_PULL_BASE/<application>/<stream key>`.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::ids::{RoomId, UserId};
use roomrec_domain::publish::{StreamKey, EXPIRES_PARAM, SIGNATURE_PARAM, VIDEO_TYPE_PARAM};
use roomrec_domain::room::{MediaSession, Roster, VideoType};
use roomrec_domain::url::StreamUrl;
use roomrec_domain::usecases::{PublishCall, PublishEvent};
use roomrec_domain::Invalid;
use roomrec_http_edge::{
    body, json, no_content, optional_body, path, query, route_key, serve_app, ApiError, ApiResult,
};
use subtle::ConstantTimeEq;

const HOOK_ROUTE: &str = "POST /v2/hooks/nginx-rtmp/{token}";

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    if route_key(&req) == HOOK_ROUTE {
        return media_hook(deps, &req).await.unwrap_or_else(|err| err.into_response(HOOK_ROUTE));
    }
    let (rooms, req) = (&deps.rooms, &req);
    serve_app(&deps.access, req, |app| async move {
        let route = route_key(req);
        if route == "POST /v2/apps/{app_id}/publish-secret" {
            rooms.rotate_publish_secret(&app).await?;
            return no_content();
        }
        let room = RoomId::try_from(path(req, "room_id")?)?;
        if route == "GET /v2/apps/{app_id}/rooms/{room_id}/streams" {
            let streams = rooms.list_streams(&app, room.clone()).await?;
            return json(200, &Roster { room_id: room, streams });
        }
        let user = UserId::try_from(path(req, "user_id")?)?;
        let video_type = || VideoType::from_query(query(req, VIDEO_TYPE_PARAM).as_deref());
        match route {
            "PUT /v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}" => {
                let (stream, joined) = rooms.put_stream(&app, room, user, body(req)?).await?;
                json(if joined { 201 } else { 200 }, &stream)
            }
            "GET /v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}" => {
                json(200, &rooms.get_stream(&app, room, user, video_type()?).await?)
            }
            "POST /v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}/publish-url" => {
                let base = deps.config.media_publish_base.as_ref().ok_or_else(ApiError::unknown_route)?;
                json(201, &rooms.publish_url(&app, room, user, optional_body(req)?, base).await?)
            }
            "DELETE /v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}" => {
                rooms.delete_stream(&app, room, user, video_type()?).await?;
                no_content()
            }
            _ => Err(ApiError::unknown_route()),
        }
    })
    .await
}

/// nginx-rtmp's notification: a form with `call` (`publish`, `update_publish`,
/// `publish_done`; `update_play` for players), `app` (the RTMP application), `name` (the
/// stream key), `clientid` (the connection) and, on a publish, the publish URL's query
/// arguments (the signed fields). A 2xx lets the publish go on; on an update, anything else
/// disconnects the client, so only a publisher whose stream is no longer its own is refused.
async fn media_hook(deps: &Deps, req: &Request) -> ApiResult {
    let expected = deps.config.hook_token.as_deref().unwrap_or_default();
    let given = path(req, "token")?;
    let token_ok: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
    if expected.is_empty() || !token_ok {
        return Err(ApiError::unauthorized());
    }
    let form = HookForm::parse(req.body());
    // Players are the workers pulling streams: nothing to record, never to be disconnected.
    if form.field("call")? == "update_play" {
        return no_content();
    }
    let StreamKey { app_id, room_id, user_id, video_type } = StreamKey::parse(form.field("name")?)?;
    let session = MediaSession::parse(form.field("clientid")?)?;
    let call = match form.field("call")? {
        "publish" => PublishCall::Publish {
            url: pull_url(deps, form.field("app")?, form.field("name")?)?,
            video_type: VideoType::parse(form.signed(VIDEO_TYPE_PARAM)?)
                .ok_or_else(|| Invalid::new(VIDEO_TYPE_PARAM, "must be CAMERASTREAM or SUBSTREAM"))?,
            expires: form
                .signed(EXPIRES_PARAM)?
                .parse()
                .map_err(|_| Invalid::new(EXPIRES_PARAM, "must be Unix seconds"))?,
            signature: form.signed(SIGNATURE_PARAM)?.to_owned(),
        },
        "update_publish" => PublishCall::Update,
        "publish_done" => PublishCall::PublishDone,
        _ => return Err(Invalid::new("call", "must be publish, update_publish, update_play or publish_done").into()),
    };
    deps.rooms.media_hook(PublishEvent { app_id, room_id, user_id, video_type, session, call }).await?;
    no_content()
}

/// The hook's form fields, nginx-rtmp's and the publish URL's query arguments together.
struct HookForm(Vec<(String, String)>);

impl HookForm {
    fn parse(body: &Body) -> Self {
        let bytes: &[u8] = match body {
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            _ => b"",
        };
        Self(url::form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The one value of field `name`. A field given twice is refused: a publisher's query
    /// arguments share the form with nginx-rtmp's own fields and must not shadow them.
    fn field(&self, name: &'static str) -> Result<&str, Invalid> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(value),
            (None, _) => Err(Invalid::new(name, "is required")),
            (Some(_), Some(_)) => Err(Invalid::new(name, "must be given once")),
        }
    }

    /// A signed field of the publish URL, which only a minted URL carries.
    fn signed(&self, name: &'static str) -> Result<&str, Invalid> {
        self.field(name).map_err(|err| match err.reason.as_str() {
            "is required" => Invalid::new(name, "is required: publish with a URL from POST .../publish-url"),
            _ => err,
        })
    }
}

fn pull_url(deps: &Deps, application: &str, name: &str) -> Result<StreamUrl, ApiError> {
    let base = deps.config.media_pull_base.as_deref().ok_or_else(ApiError::unknown_route)?;
    if application.is_empty() || !application.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(Invalid::new("app", "must be an RTMP application name").into());
    }
    Ok(StreamUrl::parse(&format!("{}/{application}/{name}", base.trim_end_matches('/')), "name")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_field_given_twice_is_refused_so_query_arguments_cannot_shadow_nginx_fields() {
        let form = HookForm::parse(&Body::Text("call=publish&clientid=7&name=k&clientid=1".into()));
        assert_eq!(form.field("call").unwrap(), "publish");
        assert_eq!(form.field("clientid").unwrap_err().reason, "must be given once");
        let unsigned = form.signed(SIGNATURE_PARAM).unwrap_err();
        assert_eq!(unsigned.field, SIGNATURE_PARAM);
        assert!(unsigned.reason.contains("publish-url"), "{}", unsigned.reason);
    }
}
