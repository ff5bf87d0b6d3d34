//! Mix-stream parameters: the encode template, the layout and its panes, backgrounds.

use serde::{Deserialize, Serialize};

use crate::ids::{RoomId, UserId};
use crate::room::VideoType;
use crate::rule::nullable;
use crate::url::S3Uri;
use crate::Invalid;

/// `max_idle_time` bounds in seconds and its default.
pub const MAX_IDLE_SECS: std::ops::RangeInclusive<u32> = 5..=43_200;
/// Default `max_idle_time` in seconds.
pub const DEFAULT_MAX_IDLE_SECS: u32 = 30;
/// Canvas width and height bounds in pixels.
pub const CANVAS_PIXELS: std::ops::RangeInclusive<u32> = 64..=3840;
/// Output frame-rate bounds.
pub const FRAME_RATE: std::ops::RangeInclusive<u32> = 1..=60;
/// Output video bitrate bounds in kbit/s.
pub const BITRATE_KBPS: std::ops::RangeInclusive<u32> = 64..=20_000;
/// Most `user_background_images` a mix takes: the job is one DynamoDB item, at most 400 KB
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html>),
/// and 64 images of the longest key stay under a fifth of it.
pub const MAX_USER_BACKGROUND_IMAGES: usize = 64;

/// The output of a mix: `WIDTHxHEIGHT_FPS_KBPS` (or `WIDTH*HEIGHT_FPS_KBPS`), or `audio_only`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EncodeTemplate {
    text: String,
    video: Option<VideoEncoding>,
}

/// The video half of an encode template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoEncoding {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub kbps: u32,
}

impl EncodeTemplate {
    /// The video encoding, or `None` for an audio-only mix.
    pub fn video(&self) -> Option<VideoEncoding> {
        self.video
    }
}

impl TryFrom<String> for EncodeTemplate {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        const FIELD: &str = "encode_template";
        if text == "audio_only" {
            return Ok(Self { text, video: None });
        }
        let shape = || Invalid::new(FIELD, "must be WIDTHxHEIGHT_FPS_KBPS (e.g. 1920x1080_30_4620) or audio_only");
        let parts: Vec<&str> = text.split('_').collect();
        let [size, fps, kbps] = parts.as_slice() else { return Err(shape()) };
        let (width, height) = parse_size(size).ok_or_else(shape)?;
        let fps = plain_number(fps).ok_or_else(shape)?;
        let kbps = plain_number(kbps).ok_or_else(shape)?;
        if !CANVAS_PIXELS.contains(&width) || !CANVAS_PIXELS.contains(&height) || width % 2 + height % 2 != 0 {
            return Err(Invalid::new(FIELD, "width and height must be even and between 64 and 3840"));
        }
        if !FRAME_RATE.contains(&fps) {
            return Err(Invalid::new(FIELD, "frame rate must be 1 to 60"));
        }
        if !BITRATE_KBPS.contains(&kbps) {
            return Err(Invalid::new(FIELD, "bitrate must be 64 to 20000 kbit/s"));
        }
        Ok(Self { text, video: Some(VideoEncoding { width, height, fps, kbps }) })
    }
}

impl From<EncodeTemplate> for String {
    fn from(value: EncodeTemplate) -> String {
        value.text
    }
}

/// Parses `1280x720` or `1280*720`.
pub fn parse_size(text: &str) -> Option<(u32, u32)> {
    let (w, h) = text.split_once(['x', '*'])?;
    Some((plain_number(w)?, plain_number(h)?))
}

/// A number written plainly: 1 to 6 digits, no sign, no leading zero. The text is stored as
/// given, so `0000…01280` must not pass for 1280.
fn plain_number(text: &str) -> Option<u32> {
    let plain = (1..=6).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && !(text.len() > 1 && text.starts_with('0'));
    plain.then(|| text.parse().ok()).flatten()
}

/// The picture layouts of seed 004.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutTemplate {
    /// Equal panes in an adaptive grid, up to 25.
    #[default]
    NineGridsView,
    /// One large pane on the left, the others in a column on the right; up to 17.
    ScreenShareLeft,
    /// One large pane on the right, the others in a column on the left; up to 17.
    ScreenShareRight,
}

impl LayoutTemplate {
    /// How many panes the layout holds.
    pub fn max_panes(self) -> u32 {
        match self {
            Self::NineGridsView => 25,
            Self::ScreenShareLeft | Self::ScreenShareRight => 17,
        }
    }
}

/// A user's camera or screen share pinned to a pane (pane 1 is the large one in the
/// screen-share layouts: only the stream pinned there fills it, else it shows the background).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutPane {
    pub id: u32,
    pub user_id: UserId,
    /// Which of the user's streams; CAMERASTREAM when absent.
    #[serde(default)]
    pub video_type: VideoType,
}

/// A user's own background image, shown while their pane has no video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBackgroundImage {
    pub user_id: UserId,
    pub image: S3Uri,
}

/// A colour written `#RRGGBB`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Color(String);

impl TryFrom<String> for Color {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        let ok = text.len() == 7 && text.starts_with('#') && text[1..].bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(Invalid::new("background_color", "must be a colour written #RRGGBB"));
        }
        Ok(Self(text.to_ascii_uppercase()))
    }
}

impl Color {
    /// The colour's red, green and blue.
    pub fn rgb(&self) -> [u8; 3] {
        // Checked on parse: `#` and six hex digits.
        let channel = |i: usize| u8::from_str_radix(&self.0[i..i + 2], 16).unwrap_or(0);
        [channel(1), channel(3), channel(5)]
    }
}

impl From<Color> for String {
    fn from(value: Color) -> String {
        value.0
    }
}

/// The stored `mix_param` of a mix job, echoed in responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixParam {
    pub room_id: RoomId,
    pub encode_template: EncodeTemplate,
    pub max_idle_time: u32,
    pub layout_template: LayoutTemplate,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layout_panes: Vec<LayoutPane>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_color: Option<Color>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_image: Option<S3Uri>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_user_background_image: Option<S3Uri>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_background_images: Vec<UserBackgroundImage>,
}

/// `mix_param` as a client sends it on create, and the body of a layout update (every field
/// optional there; `room_id` and `encode_template` cannot change while recording). The
/// backgrounds tell absent (`None`: unchanged) from `null` (`Some(None)`: cleared, back to
/// the default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixParamRequest {
    pub room_id: Option<RoomId>,
    pub encode_template: Option<EncodeTemplate>,
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
}

/// Checks `max_idle_time` (seconds) for the field `field`.
pub fn check_max_idle(seconds: u32, field: &str) -> Result<u32, Invalid> {
    if MAX_IDLE_SECS.contains(&seconds) {
        Ok(seconds)
    } else {
        Err(Invalid::new(field, format!("must be 5 to 43200 seconds, got {seconds}")))
    }
}

impl MixParam {
    /// A new `mix_param`; `room_id` and `encode_template` are required.
    pub fn create(request: MixParamRequest) -> Result<Self, Invalid> {
        let mut param = Self {
            room_id: request.room_id.clone().ok_or_else(|| Invalid::new("mix_param.room_id", "is required"))?,
            encode_template: request
                .encode_template
                .clone()
                .ok_or_else(|| Invalid::new("mix_param.encode_template", "is required"))?,
            max_idle_time: DEFAULT_MAX_IDLE_SECS,
            layout_template: LayoutTemplate::default(),
            layout_panes: Vec::new(),
            background_color: None,
            background_image: None,
            default_user_background_image: None,
            user_background_images: Vec::new(),
        };
        param.apply(MixParamRequest { room_id: None, encode_template: None, ..request }, "mix_param")?;
        Ok(param)
    }

    /// Applies a layout update; `prefix` is the field path of these fields in the body.
    pub fn apply(&mut self, request: MixParamRequest, prefix: &str) -> Result<(), Invalid> {
        let field = |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
        if request.room_id.is_some_and(|room| room != self.room_id) {
            return Err(Invalid::new(field("room_id"), "cannot change while the job exists"));
        }
        if request.encode_template.is_some_and(|t| t != self.encode_template) {
            return Err(Invalid::new(field("encode_template"), "cannot change while the job exists"));
        }
        if let Some(seconds) = request.max_idle_time {
            self.max_idle_time = check_max_idle(seconds, &field("max_idle_time"))?;
        }
        if let Some(layout) = request.layout_template {
            self.layout_template = layout;
        }
        if let Some(panes) = request.layout_panes {
            self.layout_panes = panes;
        }
        if let Some(color) = request.background_color {
            self.background_color = color;
        }
        if let Some(image) = request.background_image {
            self.background_image = image;
        }
        if let Some(image) = request.default_user_background_image {
            self.default_user_background_image = image;
        }
        if let Some(images) = request.user_background_images {
            let images = images.unwrap_or_default();
            if images.len() > MAX_USER_BACKGROUND_IMAGES {
                let reason = format!("at most {MAX_USER_BACKGROUND_IMAGES} images, got {}", images.len());
                return Err(Invalid::new(field("user_background_images"), reason));
            }
            self.user_background_images = images;
        }
        check_panes(&self.layout_panes, self.layout_template, &field("layout_panes"))
    }
}

fn check_panes(panes: &[LayoutPane], layout: LayoutTemplate, field: &str) -> Result<(), Invalid> {
    let max = layout.max_panes();
    if panes.len() > max as usize {
        return Err(Invalid::new(field, format!("{} panes do not fit {layout:?}, which holds {max}", panes.len())));
    }
    for (i, pane) in panes.iter().enumerate() {
        if pane.id == 0 || pane.id > max {
            return Err(Invalid::new(format!("{field}[{i}].id"), format!("must be 1 to {max}")));
        }
        if panes[..i].iter().any(|p| p.id == pane.id) {
            return Err(Invalid::new(format!("{field}[{i}].id"), "is used twice"));
        }
        if panes[..i].iter().any(|p| p.user_id == pane.user_id && p.video_type == pane.video_type) {
            return Err(Invalid::new(format!("{field}[{i}].user_id"), "is pinned twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_templates_accept_both_separators_and_audio_only() {
        let t = EncodeTemplate::try_from("1920x1080_30_4620".to_owned()).unwrap();
        assert_eq!(t.video(), Some(VideoEncoding { width: 1920, height: 1080, fps: 30, kbps: 4620 }));
        assert!(EncodeTemplate::try_from("1280*720_15_1500".to_owned()).is_ok());
        assert_eq!(EncodeTemplate::try_from("audio_only".to_owned()).unwrap().video(), None);
        let zeros = format!("{}1920x1080_30_4620", "0".repeat(100_000));
        for bad in ["1920x1080", "1921x1080_30_4620", "1920x1080_0_4620", "1920x1080_30_1", "big_30_100", ""]
            .into_iter()
            .chain(["+1920x1080_30_4620", "1920x1080_030_4620", zeros.as_str()])
        {
            assert!(EncodeTemplate::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn colours_read_as_rgb() {
        assert_eq!(Color::try_from("#ff8000".to_owned()).unwrap().rgb(), [255, 128, 0]);
        assert!(Color::try_from("#ff80".to_owned()).is_err());
    }

    #[test]
    fn more_panes_than_the_layout_holds_are_refused() {
        let panes: Vec<LayoutPane> = (1..=18)
            .map(|id| LayoutPane {
                id,
                user_id: UserId::try_from(format!("u{id}")).unwrap(),
                video_type: VideoType::default(),
            })
            .collect();
        let request = MixParamRequest {
            room_id: Some(RoomId::try_from("r").unwrap()),
            encode_template: Some(EncodeTemplate::try_from("640x360_15_500".to_owned()).unwrap()),
            layout_template: Some(LayoutTemplate::ScreenShareLeft),
            layout_panes: Some(panes),
            ..Default::default()
        };
        let err = MixParam::create(request).unwrap_err();
        assert_eq!(err.field, "mix_param.layout_panes");
    }

    #[test]
    fn more_user_background_images_than_a_job_item_holds_are_refused_not_stored() {
        let image = |i: usize| UserBackgroundImage {
            user_id: UserId::try_from(format!("u{i}")).unwrap(),
            image: S3Uri::parse(&format!("s3://bucket1/{}", "k".repeat(1000)), "image").unwrap(),
        };
        let request = |count: usize| MixParamRequest {
            room_id: Some(RoomId::try_from("r").unwrap()),
            encode_template: Some(EncodeTemplate::try_from("640x360_15_500".to_owned()).unwrap()),
            user_background_images: Some(Some((0..count).map(image).collect())),
            ..Default::default()
        };
        assert!(MixParam::create(request(MAX_USER_BACKGROUND_IMAGES)).is_ok());
        let err = MixParam::create(request(MAX_USER_BACKGROUND_IMAGES + 1)).unwrap_err();
        assert_eq!(err.field, "mix_param.user_background_images");
    }

    #[test]
    fn in_an_update_null_clears_a_background_and_an_absent_field_keeps_it() {
        let body = |json: &str| serde_json::from_str::<MixParamRequest>(json).unwrap();
        let mut param = MixParam::create(body(
            r##"{"room_id":"r","encode_template":"640x360_15_500","background_color":"#102030",
            "background_image":"s3://b12/bg.png","default_user_background_image":"s3://b12/u.png",
            "user_background_images":[{"user_id":"u1","image":"s3://b12/u1.png"}]}"##,
        ))
        .unwrap();
        param.apply(body(r#"{"layout_template":"screen_share_left"}"#), "mix_param").unwrap();
        assert_eq!(param.background_color.as_ref().map(Color::rgb), Some([0x10, 0x20, 0x30]), "absent: unchanged");
        assert!(param.background_image.is_some() && param.default_user_background_image.is_some());
        assert_eq!(param.user_background_images.len(), 1);
        param.apply(body(r#"{"background_color":null,"background_image":null}"#), "mix_param").unwrap();
        assert_eq!((param.background_color.as_ref(), param.background_image.as_ref()), (None, None), "null: cleared");
        assert!(param.default_user_background_image.is_some(), "the others stay");
        param
            .apply(body(r#"{"default_user_background_image":null,"user_background_images":null}"#), "mix_param")
            .unwrap();
        assert!(param.default_user_background_image.is_none() && param.user_background_images.is_empty());
        param.apply(body(r##"{"background_color":"#ffffff"}"##), "mix_param").unwrap();
        assert_eq!(param.background_color.as_ref().map(Color::rgb), Some([255, 255, 255]));
    }
}
