//! The Jocloud request bodies and what `startrecord` checks before it uses a reservation.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{RecordType, StreamType, DEFAULT_ENCODE_TEMPLATE, DEFAULT_IDLE_SECS};
use crate::ids::{ResId, RoomId, RuleId};
use crate::mix::{
    check_max_idle, Color, EncodeTemplate, LayoutPane, LayoutTemplate, MixParam, MixParamRequest, UserBackgroundImage,
};
use crate::rule::nullable;
use crate::url::S3Uri;
use crate::{Invalid, UseCaseError};

/// Body of `applyrecord` (optional: a POST without a body reserves an unbound resource).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRecordRequest {
    /// Binds the resource to this room.
    pub roomid: Option<RoomId>,
    /// Jocloud clients send their app id; the path names ours.
    pub appid: Option<IgnoredAny>,
}

/// Body of `startrecord`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRecordRequest {
    pub resid: String,
    pub roomid: RoomId,
    pub recordtype: Option<RecordType>,
    pub streamtype: Option<StreamType>,
    /// The record rule that says where files go (bucket and key prefix).
    pub record_rule_id: String,
    pub max_idle_time: Option<u32>,
    pub encode_template: Option<EncodeTemplate>,
    pub layout_template: Option<LayoutTemplate>,
    pub layout_panes: Option<Vec<LayoutPane>>,
    #[serde(default, deserialize_with = "nullable")]
    pub background_color: Option<Option<Color>>,
    #[serde(default, deserialize_with = "nullable")]
    pub background_image: Option<Option<S3Uri>>,
    #[serde(default, deserialize_with = "nullable")]
    pub default_user_background_image: Option<Option<S3Uri>>,
    #[serde(default, deserialize_with = "nullable")]
    pub user_background_images: Option<Option<Vec<UserBackgroundImage>>>,
    pub appid: Option<IgnoredAny>,
}

/// Body of `updatemixrecord`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMixRecordRequest {
    pub recordid: String,
    pub roomid: Option<RoomId>,
    pub max_idle_time: Option<u32>,
    pub layout_template: Option<LayoutTemplate>,
    pub layout_panes: Option<Vec<LayoutPane>>,
    #[serde(default, deserialize_with = "nullable")]
    pub background_color: Option<Option<Color>>,
    #[serde(default, deserialize_with = "nullable")]
    pub background_image: Option<Option<S3Uri>>,
    #[serde(default, deserialize_with = "nullable")]
    pub default_user_background_image: Option<Option<S3Uri>>,
    #[serde(default, deserialize_with = "nullable")]
    pub user_background_images: Option<Option<Vec<UserBackgroundImage>>>,
    pub appid: Option<IgnoredAny>,
}

/// Body of `stoprecord` and `queryrecord`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordIdRequest {
    pub recordid: String,
    pub roomid: Option<RoomId>,
    pub appid: Option<IgnoredAny>,
}

/// The mix fields of a Jocloud body as a v2 `mix_param` (room and template aside).
macro_rules! mix_fields {
    ($request:expr, $max_idle_time:expr) => {
        MixParamRequest {
            room_id: None,
            encode_template: None,
            max_idle_time: $max_idle_time,
            layout_template: $request.layout_template,
            layout_panes: $request.layout_panes,
            background_color: $request.background_color,
            background_image: $request.background_image,
            default_user_background_image: $request.default_user_background_image,
            user_background_images: $request.user_background_images,
        }
    };
}

impl StartRecordRequest {
    /// The name of a mix-only field the body gives, if any.
    pub fn mix_field(&self) -> Option<&'static str> {
        [
            ("encode_template", self.encode_template.is_some()),
            ("layout_template", self.layout_template.is_some()),
            ("layout_panes", self.layout_panes.is_some()),
            ("background_color", self.background_color.as_ref().is_some_and(Option::is_some)),
            ("background_image", self.background_image.as_ref().is_some_and(Option::is_some)),
            ("default_user_background_image", self.default_user_background_image.as_ref().is_some_and(Option::is_some)),
            ("user_background_images", self.user_background_images.as_ref().is_some_and(Option::is_some)),
        ]
        .into_iter()
        .find_map(|(name, given)| given.then_some(name))
    }

    /// The layout fields as a v2 `mix_param` of `room` with `encode_template`.
    pub fn mix_param(self, room: RoomId, encode_template: EncodeTemplate, max_idle_time: u32) -> MixParamRequest {
        MixParamRequest {
            room_id: Some(room),
            encode_template: Some(encode_template),
            ..mix_fields!(self, Some(max_idle_time))
        }
    }
}

impl UpdateMixRecordRequest {
    /// The update as a v2 `mix_param` update.
    pub fn mix_param(self) -> MixParamRequest {
        let max_idle_time = self.max_idle_time;
        mix_fields!(self, max_idle_time)
    }
}

/// A `startrecord` body checked and filled with defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct StartPlan {
    pub resid: ResId,
    pub room_id: RoomId,
    pub recordtype: RecordType,
    pub streamtype: StreamType,
    pub record_rule_id: RuleId,
    pub max_idle_time: u32,
    /// The layout of a mixed recording.
    pub mix_param: Option<MixParam>,
}

impl StartRecordRequest {
    /// Checks the body; an id that cannot be one of ours is simply not found.
    pub fn plan(self) -> Result<StartPlan, UseCaseError> {
        let resid = ResId::parse(&self.resid).ok_or(UseCaseError::not_found("resid", "recording resource"))?;
        let rule =
            RuleId::parse(&self.record_rule_id).ok_or(UseCaseError::not_found("record_rule_id", "record rule"))?;
        let max_idle_time = check_max_idle(self.max_idle_time.unwrap_or(DEFAULT_IDLE_SECS), "max_idle_time")?;
        let (recordtype, streamtype, room_id) =
            (self.recordtype.unwrap_or_default(), self.streamtype.unwrap_or_default(), self.roomid.clone());
        let mix_param = match streamtype {
            StreamType::Source => {
                if let Some(field) = self.mix_field() {
                    return Err(Invalid::new(field, "applies to mixed recordings (streamtype mixed) only").into());
                }
                None
            }
            StreamType::Mixed => {
                let template = mix_template(recordtype, self.encode_template.clone())?;
                Some(
                    MixParam::create(self.mix_param(room_id.clone(), template, max_idle_time))
                        .map_err(jocloud_field)?,
                )
            }
        };
        Ok(StartPlan { resid, room_id, recordtype, streamtype, record_rule_id: rule, max_idle_time, mix_param })
    }
}

/// The encode template of a mixed recording of `recordtype`.
fn mix_template(recordtype: RecordType, given: Option<EncodeTemplate>) -> Result<EncodeTemplate, Invalid> {
    let audio_only = given.as_ref().is_some_and(|t| t.video().is_none());
    match recordtype {
        RecordType::Video => Err(Invalid::new(
            "recordtype",
            "video-only recording is for source streams (streamtype source); a mix always carries the room's sound",
        )),
        RecordType::Audio if given.is_some() && !audio_only => {
            Err(Invalid::new("encode_template", "an audio recording has no picture: leave it out or use audio_only"))
        }
        RecordType::Audio => EncodeTemplate::try_from("audio_only".to_owned()),
        RecordType::AudioVideo if audio_only => {
            Err(Invalid::new("encode_template", "audio_only needs recordtype audio (2)"))
        }
        RecordType::AudioVideo => {
            given.map_or_else(|| EncodeTemplate::try_from(DEFAULT_ENCODE_TEMPLATE.to_owned()), Ok)
        }
    }
}

/// A v2 `mix_param` rejection renamed to the Jocloud field (which has no `mix_param.`).
pub fn jocloud_field(invalid: Invalid) -> Invalid {
    match invalid.field.strip_prefix("mix_param.") {
        Some(field) => Invalid::new(field, invalid.reason),
        None => invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random;

    fn start(json: serde_json::Value) -> Result<StartPlan, UseCaseError> {
        let mut body = serde_json::json!({
            "resid": ResId::generate(random()), "roomid": "abcabc", "record_rule_id": RuleId::generate(random()),
        });
        body.as_object_mut().unwrap().extend(json.as_object().unwrap().clone());
        serde_json::from_value::<StartRecordRequest>(body).map_err(|e| Invalid::new("body", e.to_string()))?.plan()
    }

    fn invalid_field(result: Result<StartPlan, UseCaseError>) -> String {
        match result {
            Err(UseCaseError::Invalid(invalid)) => invalid.field,
            other => panic!("expected a rejected field, got {other:?}"),
        }
    }

    #[test]
    fn record_and_stream_types_take_jocloud_numbers_or_names() {
        let plan = start(serde_json::json!({ "recordtype": 2, "streamtype": 2 })).unwrap();
        assert_eq!((plan.recordtype, plan.streamtype), (RecordType::Audio, StreamType::Source));
        let plan = start(serde_json::json!({ "recordtype": "video", "streamtype": "source" })).unwrap();
        assert_eq!((plan.recordtype, plan.streamtype), (RecordType::Video, StreamType::Source));
        let plan = start(serde_json::json!({})).unwrap();
        assert_eq!(
            (plan.recordtype, plan.streamtype, plan.max_idle_time),
            (RecordType::AudioVideo, StreamType::Mixed, 30)
        );
        assert!(start(serde_json::json!({ "streamtype": 3 })).is_err());
    }

    #[test]
    fn a_mixed_start_gets_the_default_picture_and_an_audio_one_none() {
        let plan = start(serde_json::json!({ "layout_template": "screen_share_left" })).unwrap();
        let mix = plan.mix_param.unwrap();
        assert_eq!(String::from(mix.encode_template), DEFAULT_ENCODE_TEMPLATE);
        assert_eq!(mix.layout_template, LayoutTemplate::ScreenShareLeft);
        let audio = start(serde_json::json!({ "recordtype": 2 })).unwrap().mix_param.unwrap();
        assert_eq!(audio.encode_template.video(), None);
    }

    #[test]
    fn contradictory_start_bodies_name_the_field_at_fault() {
        assert_eq!(invalid_field(start(serde_json::json!({ "recordtype": 1 }))), "recordtype");
        assert_eq!(
            invalid_field(start(serde_json::json!({ "recordtype": 2, "encode_template": "640x360_15_500" }))),
            "encode_template"
        );
        assert_eq!(invalid_field(start(serde_json::json!({ "encode_template": "audio_only" }))), "encode_template");
        assert_eq!(
            invalid_field(start(serde_json::json!({ "streamtype": 2, "layout_template": "nine_grids_view" }))),
            "layout_template"
        );
        assert_eq!(invalid_field(start(serde_json::json!({ "max_idle_time": 2 }))), "max_idle_time");
        let panes: Vec<_> = (1..=26).map(|i| serde_json::json!({ "id": i, "user_id": format!("u{i}") })).collect();
        assert_eq!(
            invalid_field(start(serde_json::json!({ "layout_panes": panes }))),
            "layout_panes",
            "no mix_param. prefix"
        );
        let unknown = start(serde_json::json!({ "resid": "not-a-resid" }));
        assert!(matches!(unknown, Err(UseCaseError::NotFound { field: "resid", .. })), "{unknown:?}");
    }

    #[test]
    fn an_updatemixrecord_with_null_clears_the_background_and_without_it_keeps_it() {
        let update = |json: &str| serde_json::from_str::<UpdateMixRecordRequest>(json).unwrap().mix_param();
        let cleared = update(r#"{"recordid":"r1","background_color":null,"user_background_images":null}"#);
        assert_eq!((cleared.background_color, cleared.user_background_images), (Some(None), Some(None)));
        let kept = update(r#"{"recordid":"r1","layout_template":"screen_share_left"}"#);
        assert!(kept.background_color.is_none() && kept.background_image.is_none());
    }
}
