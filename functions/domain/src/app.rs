//! Applications: the unit a customer configures recording for.

use serde::{Deserialize, Serialize};

use crate::clock::Random;
use crate::error::Invalid;
use crate::ids::AppId;
use crate::publish::PublishSecret;
use crate::time::Timestamp;
use crate::url::StreamUrlTemplate;

/// Longest `app_name` accepted.
pub const MAX_APP_NAME_CHARS: usize = 128;

/// A customer's application, as stored and as returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub app_id: AppId,
    pub app_name: AppName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_url_template: Option<StreamUrlTemplate>,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
    /// The key of the app's publish URLs. Kept by the store beside the app, never in
    /// responses; `None` for an app stored before publish URLs existed.
    #[serde(skip)]
    pub publish_secret: Option<PublishSecret>,
}

/// A display name for an app: 1–128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppName(String);

impl TryFrom<String> for AppName {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        let chars = text.chars().count();
        if text.trim().is_empty() || chars > MAX_APP_NAME_CHARS {
            return Err(Invalid::new("app_name", format!("must be 1 to {MAX_APP_NAME_CHARS} characters")));
        }
        if text.chars().any(char::is_control) {
            return Err(Invalid::new("app_name", "must not contain control characters"));
        }
        Ok(Self(text))
    }
}

impl From<AppName> for String {
    fn from(value: AppName) -> String {
        value.0
    }
}

/// Body of `POST /v2/apps` and `PUT /v2/apps/{app_id}`; absent fields keep their value on update.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRequest {
    pub app_name: Option<AppName>,
    #[serde(default, deserialize_with = "crate::rule::nullable")]
    pub stream_url_template: Option<Option<StreamUrlTemplate>>,
}

impl App {
    /// A new app from a create request; `app_name` is required.
    pub fn create(request: AppRequest, random: &dyn Random, now: Timestamp) -> Result<Self, Invalid> {
        let app_name = request.app_name.ok_or_else(|| Invalid::new("app_name", "is required"))?;
        Ok(Self {
            app_id: AppId::generate(random),
            app_name,
            stream_url_template: request.stream_url_template.flatten(),
            create_time: now,
            update_time: now,
            publish_secret: Some(PublishSecret::generate(random)),
        })
    }

    /// Applies an update request: given fields replace, `null` clears the template.
    pub fn update(&mut self, request: AppRequest, now: Timestamp) {
        if let Some(name) = request.app_name {
            self.app_name = name;
        }
        if let Some(template) = request.stream_url_template {
            self.stream_url_template = template;
        }
        self.update_time = now;
    }
}
