//! The canvas: the background, and in each pane its participant's current picture, else
//! their image, else the background. The canvas persists from frame to frame and a pane is
//! painted again only when what it shows changed, so a still pane costs nothing.

use std::sync::Arc;

use ffmpeg_next::frame;

use super::feed::{Feed, Picture, Target};
use super::geometry::{place, Fill, Rect};
use super::picture::{self, Scaler, Yuv};
use crate::Image;

/// Who a pane is for.
pub(crate) struct Occupant {
    pub feed: Arc<Feed>,
    /// Shown while there is no picture (audio only, not connected yet, stalled).
    pub image: Option<Image>,
}

/// One pane of the layout.
pub(crate) struct Pane {
    pub rect: Rect,
    pub fill: Fill,
    /// `None`: an empty pane, showing the background.
    pub occupant: Option<Occupant>,
}

impl Pane {
    fn target(&self) -> Target {
        Target { size: self.rect.size(), fill: self.fill }
    }
}

/// What a pane shows on the canvas now.
#[derive(PartialEq)]
enum Painted {
    Background,
    Image(Image),
    Picture { feed: u64, seq: u64, area: Rect },
}

struct PaneState {
    pane: Pane,
    painted: Painted,
}

/// Paints the canvas of a mix.
pub(crate) struct Composer {
    canvas: frame::Video,
    background: frame::Video,
    panes: Vec<PaneState>,
    stills: Stills,
    /// For a picture scaled for the pane's previous size, shown until new ones are due.
    rescaler: Scaler,
    rescaled: frame::Video,
    /// Panes that showed a picture again, not yet counted by the mixer.
    repeats: u64,
}

impl Composer {
    /// A black canvas of `size`, without panes.
    pub(crate) fn new(size: (u32, u32)) -> Self {
        let mut background = picture::blank(size);
        picture::fill(&mut background, Yuv::from_rgb([0, 0, 0]));
        let mut canvas = picture::blank(size);
        let rect = full(&canvas);
        picture::copy_rect(&mut canvas, &background, rect);
        Self {
            canvas,
            background,
            panes: Vec::new(),
            stills: Stills::default(),
            rescaler: Scaler::default(),
            rescaled: frame::Video::empty(),
            repeats: 0,
        }
    }

    /// How many times a pane showed a picture again since the last call.
    pub(crate) fn take_repeats(&mut self) -> u64 {
        std::mem::take(&mut self.repeats)
    }

    /// Sets the background: `image` scaled to cover the canvas, else `colour`.
    pub(crate) fn set_background(&mut self, colour: [u8; 3], image: Option<&Image>) {
        let size = (self.background.width(), self.background.height());
        let target = Target { size, fill: Fill::Cover };
        match image.and_then(|image| self.stills.rendered(image, target)) {
            Some((still, _)) => picture::copy(&mut self.background, (0, 0), still, (0, 0), size),
            None => picture::fill(&mut self.background, Yuv::from_rgb(colour)),
        }
        self.repaint();
    }

    /// Keeps the decoded images among `images`, forgets the others.
    pub(crate) fn keep_images(&mut self, images: &[&Image]) {
        self.stills.retain(images);
    }

    /// Lays out `panes` from the next frame on.
    pub(crate) fn set_panes(&mut self, panes: Vec<Pane>) {
        self.panes = panes.into_iter().map(|pane| PaneState { pane, painted: Painted::Background }).collect();
        self.repaint();
    }

    /// The canvas showing every pane's content at `due_us` on the mix clock.
    pub(crate) fn compose(&mut self, due_us: i64) -> Result<&mut frame::Video, ffmpeg_next::Error> {
        crate::ffi::make_writable(&mut self.canvas)?;
        for state in &mut self.panes {
            let painter = Painter {
                canvas: &mut self.canvas,
                background: &self.background,
                rescaler: &mut self.rescaler,
                rescaled: &mut self.rescaled,
            };
            self.repeats += u64::from(painter.paint(state, due_us, &mut self.stills));
        }
        Ok(&mut self.canvas)
    }

    /// The whole canvas shows the background again; every pane will be painted afresh.
    fn repaint(&mut self) {
        let rect = full(&self.canvas);
        picture::copy_rect(&mut self.canvas, &self.background, rect);
        for state in &mut self.panes {
            state.painted = Painted::Background;
        }
    }
}

/// What painting a pane needs, borrowed from the [`Composer`].
struct Painter<'a> {
    canvas: &'a mut frame::Video,
    background: &'a frame::Video,
    rescaler: &'a mut Scaler,
    rescaled: &'a mut frame::Video,
}

impl Painter<'_> {
    /// Paints the pane's content at `due_us`; says whether it is a picture shown before.
    fn paint(mut self, state: &mut PaneState, due_us: i64, stills: &mut Stills) -> bool {
        let PaneState { pane, painted } = state;
        let Some(occupant) = &pane.occupant else {
            self.background_of(pane.rect, painted);
            return false;
        };
        let shown = occupant.feed.with_picture(due_us, |current, repeat| {
            current.map(|current| {
                self.picture(pane, occupant.feed.id, current, painted);
                repeat
            })
        });
        if let Some(repeat) = shown {
            return repeat;
        }
        match &occupant.image {
            Some(image) if matches!(painted, Painted::Image(shown) if shown == image) => {}
            Some(image) => match stills.rendered(image, pane.target()) {
                Some((still, offset)) => {
                    self.background_of(pane.rect, painted);
                    let at = (pane.rect.x + offset.0, pane.rect.y + offset.1);
                    picture::copy(self.canvas, at, still, (0, 0), (still.width(), still.height()));
                    *painted = Painted::Image(image.clone());
                }
                None => self.background_of(pane.rect, painted),
            },
            None => self.background_of(pane.rect, painted),
        }
        false
    }

    fn picture(&mut self, pane: &Pane, feed: u64, current: &Picture, painted: &mut Painted) {
        if matches!(painted, Painted::Picture { feed: f, seq, .. } if *f == feed && *seq == current.seq) {
            return;
        }
        let pane_size = pane.rect.size();
        let frame = if current.target == pane.target() {
            &current.frame
        } else {
            // Scaled for the pane's previous size: fit it to the new one until new pictures come.
            let source = (current.frame.width(), current.frame.height());
            let placement = place(source, pane_size, pane.fill);
            if (self.rescaled.width(), self.rescaled.height()) != placement.size {
                *self.rescaled = picture::blank(placement.size);
            }
            if let Err(error) = self.rescaler.scale(&current.frame, placement.crop, self.rescaled) {
                tracing::debug!(%error, "cannot rescale a picture for its new pane");
                return;
            }
            &*self.rescaled
        };
        let size = (frame.width(), frame.height());
        let offset = centred(pane_size, size);
        let area = Rect { x: pane.rect.x + offset.0, y: pane.rect.y + offset.1, width: size.0, height: size.1 };
        let same_area = matches!(painted, Painted::Picture { area: a, .. } if *a == area);
        if size != pane_size && !same_area {
            picture::copy_rect(self.canvas, self.background, pane.rect);
        }
        picture::copy(self.canvas, (area.x, area.y), frame, (0, 0), size);
        *painted = Painted::Picture { feed, seq: current.seq, area };
    }

    fn background_of(&mut self, rect: Rect, painted: &mut Painted) {
        if *painted != Painted::Background {
            picture::copy_rect(self.canvas, self.background, rect);
            *painted = Painted::Background;
        }
    }
}

/// Where a picture of `size` sits centred in a pane of `pane` size (even offsets).
fn centred(pane: (u32, u32), size: (u32, u32)) -> (u32, u32) {
    ((pane.0.saturating_sub(size.0) / 2) & !1, (pane.1.saturating_sub(size.1) / 2) & !1)
}

fn full(picture: &frame::Video) -> Rect {
    Rect { x: 0, y: 0, width: picture.width(), height: picture.height() }
}

/// Still images, decoded once and scaled once per pane size.
#[derive(Default)]
struct Stills {
    /// `None`: the image does not decode (said once in the log).
    decoded: Vec<(Image, Option<frame::Video>)>,
    rendered: Vec<(Image, Target, frame::Video, (u32, u32))>,
    scaler: Scaler,
}

impl Stills {
    /// `image` scaled for `target`, and where it sits in the pane.
    fn rendered(&mut self, image: &Image, target: Target) -> Option<(&frame::Video, (u32, u32))> {
        let found = self.rendered.iter().position(|(i, t, _, _)| i == image && *t == target);
        let index = match found {
            Some(index) => index,
            None => {
                let index = self.decode(image);
                let source = self.decoded.get(index).and_then(|(_, decoded)| decoded.as_ref())?;
                let placement = place((source.width(), source.height()), target.size, target.fill);
                let mut still = picture::blank(placement.size);
                if let Err(error) = self.scaler.scale(source, placement.crop, &mut still) {
                    tracing::warn!(%error, "cannot scale an image");
                    return None;
                }
                let offset = centred(target.size, placement.size);
                self.rendered.push((image.clone(), target, still, offset));
                self.rendered.len() - 1
            }
        };
        self.rendered.get(index).map(|(_, _, still, offset)| (still, *offset))
    }

    /// Where `image` is in `decoded`, decoding it the first time.
    fn decode(&mut self, image: &Image) -> usize {
        match self.decoded.iter().position(|(i, _)| i == image) {
            Some(index) => index,
            None => {
                let decoded = picture::decode_image(&image.0)
                    .map_err(|error| tracing::warn!(error = &error as &dyn std::error::Error, "an image is not shown"))
                    .ok();
                self.decoded.push((image.clone(), decoded));
                self.decoded.len() - 1
            }
        }
    }

    fn retain(&mut self, images: &[&Image]) {
        self.decoded.retain(|(image, _)| images.contains(&image));
        self.rendered.retain(|(image, _, _, _)| images.contains(&image));
    }
}
