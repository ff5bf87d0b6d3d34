//! What a running mix is told: the room's roster (every participant stream, a user's camera
//! and screen share apart, in join order) and the job's layout (`layout_panes` pin a user's
//! camera or screen share), each sent to the mixer when it changes. Both are read every
//! tick, so a join, a leave or a layout update reaches the picture within two ticks.
//!
//! Background images are read from the job's own storage only (the rule's bucket as its role,
//! or the deployment's bucket under the app's prefix), within the caps of
//! [`storage`](roomrec_domain::storage): a refused image is left out, as a missing one is.

use std::collections::HashMap;

use roomrec_domain::ids::AppId;
use roomrec_domain::job::Job;
use roomrec_domain::mix::{Color, LayoutTemplate, MixParam};
use roomrec_domain::room::VideoType;
use roomrec_domain::storage::{image_size, Capped, MAX_IMAGES_PER_JOB, MAX_IMAGE_BYTES, MAX_IMAGE_SIDE};
use roomrec_domain::url::S3Uri;
use roomrec_media::{Image, InputSpec, Layout, LayoutKind, MixCommand, Participant, Pin};

use crate::context::Ctx;
use crate::storage::JobStorage;

/// The canvas colour when the job names none.
const DEFAULT_BACKGROUND: [u8; 3] = [0, 0, 0];

/// The mixer's view of the room and layout, and the images fetched for it.
pub struct MixFeed {
    input: InputSpec,
    /// Where images are read from, for this app.
    storage: JobStorage,
    app: AppId,
    participants: Option<Vec<Participant>>,
    layout: Option<Layout>,
    images: HashMap<S3Uri, Option<Image>>,
}

impl MixFeed {
    /// Nothing sent yet; participants' streams are opened with `input`'s settings, images
    /// read from `storage` for `app`.
    pub fn new(input: InputSpec, storage: JobStorage, app: AppId) -> Self {
        Self { input, storage, app, participants: None, layout: None, images: HashMap::new() }
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
        let layout = self.build_layout(param).await;
        if self.layout.as_ref() != Some(&layout) {
            self.layout = Some(layout.clone());
            commands.push(MixCommand::Layout(layout));
        }
        commands
    }

    /// The layout to start with, as `param` describes it.
    pub async fn first_layout(&mut self, param: &MixParam) -> Layout {
        let layout = self.build_layout(param).await;
        self.layout = Some(layout.clone());
        layout
    }

    /// The layout `param` describes, with its images fetched (once each).
    async fn build_layout(&mut self, param: &MixParam) -> Layout {
        let background_image = self.image(param.background_image.as_ref()).await;
        let default_user_image = self.image(param.default_user_background_image.as_ref()).await;
        let mut user_images = Vec::new();
        for entry in &param.user_background_images {
            if let Some(image) = self.image(Some(&entry.image)).await {
                user_images.push((entry.user_id.to_string(), image));
            }
        }
        Layout {
            kind: match param.layout_template {
                LayoutTemplate::NineGridsView => LayoutKind::Grid,
                LayoutTemplate::ScreenShareLeft => LayoutKind::ScreenShareLeft,
                LayoutTemplate::ScreenShareRight => LayoutKind::ScreenShareRight,
            },
            pinned: param
                .layout_panes
                .iter()
                .map(|pane| Pin {
                    pane: pane.id,
                    user_id: pane.user_id.to_string(),
                    screen_share: pane.video_type == VideoType::Substream,
                })
                .collect(),
            background: param.background_color.as_ref().map_or(DEFAULT_BACKGROUND, Color::rgb),
            background_image,
            default_user_image,
            user_images,
        }
    }

    /// The image at `uri`, fetched on first use; one that cannot be fetched or is refused
    /// is left out (the colour shows instead) and not asked for again.
    async fn image(&mut self, uri: Option<&S3Uri>) -> Option<Image> {
        let uri = uri?;
        if let Some(cached) = self.images.get(uri) {
            return cached.clone();
        }
        let name = String::from(uri.clone());
        if self.images.len() >= MAX_IMAGES_PER_JOB {
            tracing::warn!(image = name, "background image refused: a job reads at most {MAX_IMAGES_PER_JOB} images");
            return None;
        }
        let fetched = self.fetch(uri, &name).await;
        self.images.insert(uri.clone(), fetched.clone());
        fetched
    }

    /// Reads the image at `uri` (`name`) if the job may, within the caps.
    async fn fetch(&self, uri: &S3Uri, name: &str) -> Option<Image> {
        if !self.storage.storage.may_read(uri, &self.app) {
            let bucket = &self.storage.storage.bucket;
            let root = &self.storage.storage.key_root;
            tracing::warn!(image = name, "background image refused: images must be in s3://{bucket}/{root}");
            return None;
        }
        let bytes = match self.storage.blobs.get_capped(uri.bucket(), uri.key(), MAX_IMAGE_BYTES).await {
            Ok(Capped::Read(bytes)) => bytes,
            Ok(Capped::TooLarge) => {
                tracing::warn!(image = name, max_bytes = MAX_IMAGE_BYTES, "background image refused: too large");
                return None;
            }
            Ok(Capped::Missing) => {
                tracing::warn!(image = name, "background image not found");
                return None;
            }
            Err(err) => {
                tracing::warn!(image = name, error = %err, "background image not available");
                return None;
            }
        };
        match image_size(&bytes) {
            Some((width, height)) if width <= MAX_IMAGE_SIDE && height <= MAX_IMAGE_SIDE => Some(Image(bytes.into())),
            Some((width, height)) => {
                let max = MAX_IMAGE_SIDE;
                tracing::warn!(image = name, width, height, "background image refused: larger than {max}x{max}");
                None
            }
            None => {
                tracing::warn!(image = name, "background image refused: not a PNG or JPEG image");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use roomrec_domain::ports::{Blobs, IfStored};
    use roomrec_domain::storage::{Access, Storage};
    use roomrec_domain::testing::{random, MemBlobs};
    use roomrec_media::Guard;

    use super::*;

    /// A PNG header saying `width`x`height` (enough for the caps; the mixer decodes later).
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bytes.extend(width.to_be_bytes());
        bytes.extend(height.to_be_bytes());
        bytes
    }

    /// A feed of a new app reading from the deployment bucket `recordings`, and that storage.
    fn feed() -> (MixFeed, Arc<MemBlobs>, AppId) {
        let app = AppId::generate(random());
        let blobs = Arc::new(MemBlobs::default());
        let storage = Storage { bucket: "recordings".into(), access: Access::Worker, key_root: format!("{app}/") };
        let input = InputSpec {
            url: String::new(),
            allow_file: false,
            io_timeout: Duration::from_secs(1),
            retry_interval: Duration::from_secs(1),
            rtmp_reader: roomrec_media::RtmpReader::default(),
            guard: Guard::allow_all(),
        };
        (MixFeed::new(input, JobStorage { storage, blobs: blobs.clone() }, app.clone()), blobs, app)
    }

    async fn put(blobs: &MemBlobs, key: &str, body: Vec<u8>) -> S3Uri {
        blobs.put("recordings", key, body.into(), "image/png", IfStored::Any).await.unwrap();
        S3Uri::parse(&format!("s3://recordings/{key}"), "image").unwrap()
    }

    #[tokio::test]
    async fn images_are_read_from_the_apps_own_prefix_within_the_caps() {
        let (mut feed, blobs, app) = feed();
        let ok = put(&blobs, &format!("{app}/bg.png"), png(1920, 1080)).await;
        assert!(feed.image(Some(&ok)).await.is_some());

        let other = AppId::generate(random());
        let foreign = put(&blobs, &format!("{other}/bg.png"), png(16, 16)).await;
        assert!(feed.image(Some(&foreign)).await.is_none(), "another app's image");
        let huge = put(&blobs, &format!("{app}/huge.png"), png(4097, 16)).await;
        assert!(feed.image(Some(&huge)).await.is_none(), "wider than 4096");
        let mut heavy = png(16, 16);
        heavy.resize(usize::try_from(MAX_IMAGE_BYTES).unwrap() + 1, 0);
        let heavy = put(&blobs, &format!("{app}/heavy.png"), heavy).await;
        assert!(feed.image(Some(&heavy)).await.is_none(), "over 10 MiB");
    }

    #[tokio::test]
    async fn a_job_reads_at_most_25_distinct_images() {
        let (mut feed, blobs, app) = feed();
        for n in 0..MAX_IMAGES_PER_JOB {
            let uri = put(&blobs, &format!("{app}/{n}.png"), png(16, 16)).await;
            assert!(feed.image(Some(&uri)).await.is_some(), "image {n}");
        }
        let first = S3Uri::parse(&format!("s3://recordings/{app}/0.png"), "image").unwrap();
        assert!(feed.image(Some(&first)).await.is_some(), "one already read is kept");
        let one_more = put(&blobs, &format!("{app}/more.png"), png(16, 16)).await;
        assert!(feed.image(Some(&one_more)).await.is_none());
    }
}
