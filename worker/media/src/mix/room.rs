//! The room as the mixer sees it: the roster (one input thread per participant), the layout,
//! who sits in which pane, and the canvas those panes are painted on.

use std::collections::HashMap;
use std::sync::Arc;

use ffmpeg_next::frame;

use super::compose::{Composer, Occupant, Pane};
use super::feed::{Clock, Feed, Target};
use super::geometry::{self, Fill, Rect, Side};
use super::pull::Puller;
use super::seating::{Member, Seating};
use super::speakers::Meter;
use crate::{Canvas, Image, Layout, LayoutKind, Mark, Participant, PlacedPane, Who};

/// A participant in the mix and their input thread.
struct Attendee {
    participant: Participant,
    feed: Arc<Feed>,
    puller: Puller,
}

/// The participants, the layout and the canvas of a mix.
pub(crate) struct Room {
    clock: Clock,
    /// The picture; `None` for an audio-only mix, whose inputs' video is not even decoded.
    canvas: Option<Canvas>,
    layout: Layout,
    /// In join order.
    roster: Vec<Attendee>,
    seating: Seating,
    composer: Option<Composer>,
    /// Input threads told to stop, not yet ended.
    leaving: Vec<Puller>,
    next_feed_id: u64,
    /// What changed since the mixer last took it, for the files' timelines.
    marks: Vec<Mark>,
    /// The last layout marked.
    laid_out: Option<Mark>,
}

impl Room {
    /// An empty room on `clock` with `canvas` (none: audio only).
    pub(crate) fn new(clock: Clock, canvas: Option<Canvas>, layout: Layout) -> Self {
        let mut room = Self {
            clock,
            canvas,
            layout: layout.clone(),
            roster: Vec::new(),
            seating: Seating::default(),
            composer: canvas.map(|c| Composer::new((c.width, c.height))),
            leaving: Vec::new(),
            next_feed_id: 0,
            marks: Vec::new(),
            laid_out: None,
        };
        if !layout.pinned.is_empty() {
            room.marks.push(Mark::Pinned(layout.pinned.clone()));
        }
        room.apply_background(&layout);
        room.replan();
        room
    }

    /// The roster is now `participants` (in join order): newcomers' inputs open, leavers'
    /// close, and the panes follow. Sound of newcomers starts at output sample `play_position`.
    pub(crate) fn set_participants(&mut self, participants: Vec<Participant>, play_position: u64) {
        // A user's camera and screen share are two attendees.
        let key = |p: &Participant| (p.user_id.clone(), p.screen_share);
        let mut current: HashMap<(String, bool), Attendee> =
            self.roster.drain(..).map(|a| (key(&a.participant), a)).collect();
        for participant in participants {
            if self.roster.iter().any(|a| key(&a.participant) == key(&participant)) {
                continue;
            }
            let attendee = match current.remove(&key(&participant)) {
                Some(mut same) if same.participant.input == participant.input => {
                    same.participant = participant;
                    same
                }
                other => {
                    if let Some(changed) = other {
                        self.leave(changed);
                    }
                    self.admit(participant, play_position)
                }
            };
            self.roster.push(attendee);
        }
        for (_, gone) in current {
            self.leave(gone);
        }
        self.leaving.retain(|puller| !puller.is_finished());
        self.replan();
    }

    /// Lays the canvas out as `layout` says from the next frame on.
    pub(crate) fn set_layout(&mut self, layout: Layout) {
        let background_changed =
            (layout.background, &layout.background_image) != (self.layout.background, &self.layout.background_image);
        if background_changed {
            self.apply_background(&layout);
        }
        if layout.pinned != self.layout.pinned {
            self.marks.push(Mark::Pinned(layout.pinned.clone()));
        }
        self.layout = layout;
        self.replan();
    }

    /// The canvas at `due_us` on the mix clock; `None` for an audio-only mix.
    pub(crate) fn compose(&mut self, due_us: i64) -> Option<Result<&mut frame::Video, ffmpeg_next::Error>> {
        self.composer.as_mut().map(|composer| composer.compose(due_us))
    }

    /// Adds every participant's sound from output sample `position` on into `left`/`right`,
    /// measuring each one's with `meter`.
    pub(crate) fn play_into(&self, position: u64, left: &mut [f32], right: &mut [f32], meter: &mut Meter) {
        meter.clear();
        for attendee in &self.roster {
            let user = &attendee.participant.user_id;
            meter.play(user, left, right, |l, r| attendee.feed.play_into(position, l, r));
        }
    }

    /// The joins, leaves, pins and layouts since the last call, in order.
    pub(crate) fn take_marks(&mut self) -> Vec<Mark> {
        std::mem::take(&mut self.marks)
    }

    /// When any participant's media last arrived, on the mix clock.
    pub(crate) fn last_media_us(&self) -> Option<i64> {
        self.roster.iter().filter_map(|a| a.feed.last_media_us()).max()
    }

    fn admit(&mut self, participant: Participant, play_position: u64) -> Attendee {
        let feed = Arc::new(Feed::new(self.next_feed_id, play_position));
        self.next_feed_id += 1;
        let (user_id, screen_share) = (&participant.user_id, participant.screen_share);
        tracing::info!(%user_id, screen_share, feed = feed.id, "a participant joins the mix");
        self.marks.push(Mark::Join(Some(who(&participant))));
        let fps = self.canvas.map(|c| c.fps);
        let puller = Puller::start(&participant, Arc::clone(&feed), self.clock, fps);
        Attendee { participant, feed, puller }
    }

    fn leave(&mut self, attendee: Attendee) {
        let (user_id, screen_share) = (&attendee.participant.user_id, attendee.participant.screen_share);
        tracing::info!(%user_id, screen_share, "a participant leaves the mix");
        self.marks.push(Mark::Leave(who(&attendee.participant)));
        attendee.puller.stop();
        self.leaving.push(attendee.puller);
    }

    fn apply_background(&mut self, layout: &Layout) {
        if let Some(composer) = self.composer.as_mut() {
            composer.set_background(layout.background, layout.background_image.as_ref());
        }
    }

    /// Seats the roster and lays out the panes; each participant's pictures are scaled for
    /// their pane from now on (or not at all when not shown).
    fn replan(&mut self) {
        let members: Vec<Member> = self
            .roster
            .iter()
            .map(|a| Member { user_id: &a.participant.user_id, screen_share: a.participant.screen_share })
            .collect();
        let seats = self.seating.seat(self.layout.kind, &self.layout.pinned, &members);
        let (Some(canvas), Some(composer)) = (self.canvas, self.composer.as_mut()) else {
            self.mark_layout(Vec::new());
            return;
        };
        let canvas = (canvas.width, canvas.height);
        let rects: Vec<(Rect, Fill)> = match self.layout.kind {
            LayoutKind::Grid => geometry::grid(canvas, seats.panes).into_iter().map(|r| (r, Fill::Cover)).collect(),
            LayoutKind::ScreenShareLeft | LayoutKind::ScreenShareRight => {
                let side = if self.layout.kind == LayoutKind::ScreenShareLeft { Side::Left } else { Side::Right };
                let (large, column) = geometry::screen_share(canvas, side, seats.panes);
                std::iter::once((large, Fill::Fit)).chain(column.into_iter().map(|r| (r, Fill::Cover))).collect()
            }
        };
        let mut targets: Vec<Option<Target>> = vec![None; self.roster.len()];
        let mut panes = Vec::with_capacity(rects.len());
        let mut placed = Vec::with_capacity(rects.len());
        for (id, (rect, fill)) in (1u32..).zip(rects) {
            let seated = seats.occupants.get(&id).map(|&index| who(&self.roster[index].participant));
            placed.push(PlacedPane { id, who: seated, x: rect.x, y: rect.y, width: rect.width, height: rect.height });
            let occupant = seats.occupants.get(&id).map(|&index| {
                targets[index] = Some(Target { size: rect.size(), fill });
                let attendee = &self.roster[index];
                Occupant {
                    feed: Arc::clone(&attendee.feed),
                    image: user_image(&self.layout, &attendee.participant.user_id).cloned(),
                }
            });
            panes.push(Pane { rect, fill, occupant });
        }
        for (attendee, target) in self.roster.iter().zip(targets) {
            attendee.feed.set_target(target);
        }
        let mut images: Vec<&Image> = self.layout.user_images.iter().map(|(_, image)| image).collect();
        images.extend(self.layout.default_user_image.iter().chain(self.layout.background_image.iter()));
        composer.keep_images(&images);
        composer.set_panes(panes);
        self.mark_layout(placed);
    }

    /// Marks the layout with `panes` if it differs from the last one marked.
    fn mark_layout(&mut self, panes: Vec<PlacedPane>) {
        let layout = Mark::Layout { kind: self.layout.kind, panes };
        if self.laid_out.as_ref() != Some(&layout) {
            self.laid_out = Some(layout.clone());
            self.marks.push(layout);
        }
    }
}

/// A participant stream as the timelines name it.
fn who(participant: &Participant) -> Who {
    Who { user_id: participant.user_id.clone(), screen_share: participant.screen_share }
}

/// The image shown for `user_id` when there is no picture of them.
fn user_image<'a>(layout: &'a Layout, user_id: &str) -> Option<&'a Image> {
    layout
        .user_images
        .iter()
        .find(|(user, _)| user == user_id)
        .map(|(_, image)| image)
        .or(layout.default_user_image.as_ref())
}

impl Drop for Room {
    fn drop(&mut self) {
        for attendee in &self.roster {
            attendee.puller.stop();
        }
        for puller in &self.leaving {
            puller.stop();
        }
        for attendee in self.roster.drain(..) {
            attendee.puller.join();
        }
        for puller in self.leaving.drain(..) {
            puller.join();
        }
    }
}
