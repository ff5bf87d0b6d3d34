//! Room rosters: `/v2/apps/{app_id}/rooms/{room_id}/streams[/{user_id}]`, and the hook a
//! media server calls when a stream starts or stops publishing (nginx-rtmp `on_publish` /
//! `on_publish_done`).
//!
//! Publishers get their URL from `POST .../streams/{user_id}/publish-url`:
//! `ROOMREC_MEDIA_PUBLISH_BASE/<app_id>.<room_id>.<user_id>?video_type=…&expires=…&signature=…`.
//! nginx-rtmp hands the query to the hook as form fields beside the stream key (`name`); the
//! stream is then pulled from `ROOMREC_MEDIA_PULL_BASE/<application>/<stream key>`.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::ids::{AppId, RoomId, UserId};
use roomrec_domain::publish::{MediaSession, EXPIRES_PARAM, SIGNATURE_PARAM, VIDEO_TYPE_PARAM};
use roomrec_domain::room::{Roster, VideoType};
use roomrec_domain::url::StreamUrl;
use roomrec_domain::usecases::{PublishCall, PublishEvent};
use roomrec_domain::Invalid;
use roomrec_http_edge::{body, json, no_content, optional_body, path, route_key, serve_app, ApiError, ApiResult};
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
        match route {
            "PUT /v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}" => {
                let (stream, joined) = rooms.put_stream(&app, room, user, body(req)?).await?;
                json(if joined { 201 } else { 200 }, &stream)
            }
            "GET /v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}" => {
                json(200, &rooms.get_stream(&app, room, user).await?)
            }
            "POST /v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}/publish-url" => {
                let base = deps.config.media_publish_base.as_ref().ok_or_else(ApiError::unknown_route)?;
                json(201, &rooms.publish_url(&app, room, user, optional_body(req)?, base).await?)
            }
            "DELETE /v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}" => {
                rooms.delete_stream(&app, room, user).await?;
                no_content()
            }
            _ => Err(ApiError::unknown_route()),
        }
    })
    .await
}

/// nginx-rtmp's notification: a form with `call` (`publish` / `publish_done`), `app` (the
/// RTMP application), `name` (the stream key), `clientid` (the connection) and, on a
/// publish, the publish URL's query arguments (the signed fields). A 2xx lets the publish go on.
async fn media_hook(deps: &Deps, req: &Request) -> ApiResult {
    let expected = deps.config.hook_token.as_deref().unwrap_or_default();
    let given = path(req, "token")?;
    let token_ok: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
    if expected.is_empty() || !token_ok {
        return Err(ApiError::unauthorized());
    }
    let form: Vec<(String, String)> = match req.body() {
        Body::Text(text) => url::form_urlencoded::parse(text.as_bytes()).into_owned().collect(),
        Body::Binary(bytes) => url::form_urlencoded::parse(bytes).into_owned().collect(),
        _ => Vec::new(),
    };
    let field = |name: &'static str| {
        form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).ok_or_else(|| Invalid::new(name, "is required"))
    };
    let (app_id, room_id, user_id) = parse_stream_key(field("name")?)?;
    let session = MediaSession::parse(field("clientid")?)?;
    let call = match field("call")? {
        "publish" => {
            let unsigned =
                |name| move |_| Invalid::new(name, "is required: publish with a URL from POST .../publish-url");
            let video_type = field(VIDEO_TYPE_PARAM).map_err(unsigned(VIDEO_TYPE_PARAM))?;
            let expires = field(EXPIRES_PARAM).map_err(unsigned(EXPIRES_PARAM))?;
            PublishCall::Publish {
                url: pull_url(deps, field("app")?, field("name")?)?,
                video_type: VideoType::parse(video_type)
                    .ok_or_else(|| Invalid::new(VIDEO_TYPE_PARAM, "must be CAMERASTREAM or SUBSTREAM"))?,
                expires: expires.parse().map_err(|_| Invalid::new(EXPIRES_PARAM, "must be Unix seconds"))?,
                signature: field(SIGNATURE_PARAM).map_err(unsigned(SIGNATURE_PARAM))?.to_owned(),
            }
        }
        "publish_done" => PublishCall::PublishDone,
        _ => return Err(Invalid::new("call", "must be publish or publish_done").into()),
    };
    deps.rooms.media_hook(PublishEvent { app_id, room_id, user_id, session, call }).await?;
    no_content()
}

/// Splits `<app_id>.<room_id>.<user_id>`.
fn parse_stream_key(name: &str) -> Result<(AppId, RoomId, UserId), Invalid> {
    let shape = || Invalid::new("name", "stream key must be <app_id>.<room_id>.<user_id>");
    let mut parts = name.split('.');
    let (Some(app), Some(room), Some(user), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(shape());
    };
    let app_id = AppId::parse(app).ok_or_else(shape)?;
    Ok((app_id, RoomId::try_from(room)?, UserId::try_from(user)?))
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
    fn stream_keys_split_into_app_room_and_user() {
        let (app, room, user) = parse_stream_key("5ff9701f2346968bb306cb43.room001.user_1").unwrap();
        assert_eq!((app.as_str(), room.as_str(), user.as_str()), ("5ff9701f2346968bb306cb43", "room001", "user_1"));
    }

    #[test]
    fn malformed_stream_keys_name_the_field() {
        for bad in
            ["room001_user", "5ff9701f2346968bb306cb43.room", "x.room.user", "5ff9701f2346968bb306cb43.r.u.extra"]
        {
            assert_eq!(parse_stream_key(bad).unwrap_err().field, "name", "{bad}");
        }
    }
}
