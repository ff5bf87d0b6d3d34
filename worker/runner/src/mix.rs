//! What a running mix is told: the room's roster (who is in, in join order) and the job's
//! layout, each sent to the mixer when it changes. Both are read every tick, so a join, a
//! leave or a layout update reaches the picture within two ticks.

use std::collections::HashMap;

use roomrec_domain::job::Job;
use roomrec_domain::mix::{Color, LayoutTemplate, MixParam};
use roomrec_domain::room::VideoType;
use roomrec_domain::url::S3Uri;
use roomrec_media::{Image, InputSpec, Layout, LayoutKind, MixCommand, Participant};

use crate::context::Ctx;

/// The canvas colour when the job names none.
const DEFAULT_BACKGROUND: [u8; 3] = [0, 0, 0];

/// The mixer's view of the room and layout, and the images fetched for it.
pub struct MixFeed {
    input: InputSpec,
    participants: Option<Vec<Participant>>,
    layout: Option<Layout>,
    images: HashMap<S3Uri, Option<Image>>,
}

impl MixFeed {
    /// Nothing sent yet; participants' streams are opened with `input`'s settings.
    pub fn new(input: InputSpec) -> Self {
        Self { input, participants: None, layout: None, images: HashMap::new() }
    }

    /// The commands that bring the mixer up to date with the roster of `job`'s room and
    /// `param`: none when nothing changed. A roster that cannot be read is left as it was.
    pub async fn changes(&mut self, ctx: &Ctx, job: &Job, param: &MixParam) -> Vec<MixCommand> {
        let mut commands = Vec::new();
        match ctx.store.list_streams(&job.app_id, &job.room_id).await {
            Ok(streams) => {
                let participants: Vec<Participant> = streams
                    .into_iter()
                    .map(|stream| Participant {
                        user_id: stream.user_id.to_string(),
                        screen_share: stream.video_type == VideoType::Substream,
                        input: InputSpec { url: stream.url.as_str().to_owned(), ..self.input.clone() },
                    })
                    .collect();
                if self.participants.as_ref() != Some(&participants) {
                    self.participants = Some(participants.clone());
                    commands.push(MixCommand::Participants(participants));
                }
            }
            Err(err) => tracing::warn!(job_id = %job.job_id, error = %err, "reading the roster failed; will retry"),
        }
        let layout = self.build_layout(ctx, param).await;
        if self.layout.as_ref() != Some(&layout) {
            self.layout = Some(layout.clone());
            commands.push(MixCommand::Layout(layout));
        }
        commands
    }

    /// The layout to start with, as `param` describes it.
    pub async fn first_layout(&mut self, ctx: &Ctx, param: &MixParam) -> Layout {
        let layout = self.build_layout(ctx, param).await;
        self.layout = Some(layout.clone());
        layout
    }

    /// The layout `param` describes, with its images fetched (once each).
    async fn build_layout(&mut self, ctx: &Ctx, param: &MixParam) -> Layout {
        let background_image = self.image(ctx, param.background_image.as_ref()).await;
        let default_user_image = self.image(ctx, param.default_user_background_image.as_ref()).await;
        let mut user_images = Vec::new();
        for entry in &param.user_background_images {
            if let Some(image) = self.image(ctx, Some(&entry.image)).await {
                user_images.push((entry.user_id.to_string(), image));
            }
        }
        Layout {
            kind: match param.layout_template {
                LayoutTemplate::NineGridsView => LayoutKind::Grid,
                LayoutTemplate::ScreenShareLeft => LayoutKind::ScreenShareLeft,
                LayoutTemplate::ScreenShareRight => LayoutKind::ScreenShareRight,
            },
            pinned: param.layout_panes.iter().map(|pane| (pane.id, pane.user_id.to_string())).collect(),
            background: param.background_color.as_ref().map_or(DEFAULT_BACKGROUND, Color::rgb),
            background_image,
            default_user_image,
            user_images,
        }
    }

    /// The image at `uri`, fetched on first use; one that cannot be fetched is left out (the
    /// colour shows instead) and not asked for again.
    async fn image(&mut self, ctx: &Ctx, uri: Option<&S3Uri>) -> Option<Image> {
        let uri = uri?;
        if let Some(cached) = self.images.get(uri) {
            return cached.clone();
        }
        let fetched = match ctx.blobs.get(uri.bucket(), uri.key()).await {
            Ok(Some(object)) => Some(Image(object.body.into())),
            Ok(None) => {
                tracing::warn!(image = %String::from(uri.clone()), "background image not found");
                None
            }
            Err(err) => {
                tracing::warn!(image = %String::from(uri.clone()), error = %err, "background image not available");
                None
            }
        };
        self.images.insert(uri.clone(), fetched.clone());
        fetched
    }
}
