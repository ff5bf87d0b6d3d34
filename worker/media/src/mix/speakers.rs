//! The active speaker of a mix: each participant's sound is measured as it is mixed, and
//! the loudest one above a floor becomes the speaker once they have led for [`HOLD`], so
//! the speaker does not flap between words or on a cough.

use std::collections::HashMap;
use std::time::Duration;

/// A participant quieter than this (RMS, in dBFS, smoothed) is not speaking: room noise and
/// a muted microphone stay below it, speech at a normal level is well above.
const FLOOR_DBFS: f32 = -45.0;
/// A new leader (or silence) must hold this long before the speaker changes.
pub(crate) const HOLD: Duration = Duration::from_millis(300);
/// Time constant of the level smoothing: bridges the dips between syllables.
const SMOOTHING: Duration = Duration::from_millis(50);

/// Measures each participant's sound as it is played into the mix.
#[derive(Default)]
pub(crate) struct Meter {
    left: Vec<f32>,
    right: Vec<f32>,
    /// Mean square per participant stream of the last frame, by user id.
    levels: Vec<(String, f32)>,
}

impl Meter {
    /// Forgets the last frame's levels.
    pub(crate) fn clear(&mut self) {
        self.levels.clear();
    }

    /// Has `play` put `user`'s sound for this frame into scratch buffers, measures it, and
    /// adds it into `left`/`right`.
    pub(crate) fn play(
        &mut self,
        user: &str,
        left: &mut [f32],
        right: &mut [f32],
        play: impl FnOnce(&mut [f32], &mut [f32]),
    ) {
        let len = left.len().min(right.len());
        self.left.clear();
        self.left.resize(len, 0.0);
        self.right.clear();
        self.right.resize(len, 0.0);
        play(&mut self.left, &mut self.right);
        let mut sum = 0.0f64;
        for (i, (l, r)) in self.left.iter().zip(&self.right).enumerate() {
            left[i] += l;
            right[i] += r;
            sum += f64::from(*l) * f64::from(*l) + f64::from(*r) * f64::from(*r);
        }
        let mean_square = if len == 0 { 0.0 } else { (sum / (2 * len) as f64) as f32 };
        self.levels.push((user.to_owned(), mean_square));
    }

    /// The last frame's levels (mean square) by user id.
    pub(crate) fn levels(&self) -> &[(String, f32)] {
        &self.levels
    }
}

/// Who leads now and since when, not yet held long enough.
struct Contender {
    user: Option<String>,
    since_us: i64,
}

/// Decides the active speaker from the participants' levels, frame by frame.
pub(crate) struct Speakers {
    /// Smoothed mean square per user id.
    smoothed: HashMap<String, f32>,
    speaker: Option<String>,
    contender: Option<Contender>,
    floor: f32,
}

impl Default for Speakers {
    fn default() -> Self {
        Self { smoothed: HashMap::new(), speaker: None, contender: None, floor: 10f32.powf(FLOOR_DBFS / 10.0) }
    }
}

impl Speakers {
    /// Takes the `levels` (mean square by user id) of the frame of `frame` starting at `at_us`
    /// on the mix clock. Returns a change of speaker, with when it began (its onset, `HOLD`
    /// or more before `at_us`), once it has held.
    pub(crate) fn observe(
        &mut self,
        at_us: i64,
        frame: Duration,
        levels: &[(String, f32)],
    ) -> Option<(i64, Option<String>)> {
        let keep = (-frame.as_secs_f32() / SMOOTHING.as_secs_f32()).exp();
        // A user who left decays like one who went quiet, and is forgotten once silent.
        for (user, level) in self.smoothed.iter_mut() {
            let now: f32 = levels.iter().filter(|(u, _)| u == user).map(|(_, l)| *l).fold(0.0, f32::max);
            *level = *level * keep + now * (1.0 - keep);
        }
        for (user, level) in levels {
            self.smoothed.entry(user.clone()).or_insert(level * (1.0 - keep));
        }
        self.smoothed.retain(|_, level| *level > self.floor / 1000.0);
        let leader = self
            .smoothed
            .iter()
            .filter(|(_, level)| **level >= self.floor)
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(user, _)| user.clone());
        if leader == self.speaker {
            self.contender = None;
            return None;
        }
        let hold_us = i64::try_from(HOLD.as_micros()).unwrap_or(i64::MAX);
        match &self.contender {
            Some(contender) if contender.user == leader => {
                let since_us = contender.since_us;
                if at_us.saturating_sub(since_us) >= hold_us {
                    self.contender = None;
                    self.speaker = leader.clone();
                    return Some((since_us, leader));
                }
            }
            _ => self.contender = Some(Contender { user: leader, since_us: at_us }),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One AAC frame at 48 kHz.
    const FRAME: Duration = Duration::from_micros(21_333);

    /// A mean square of `dbfs`.
    fn level(dbfs: f32) -> f32 {
        10f32.powf(dbfs / 10.0)
    }

    /// From ms, to ms, and each user's level (dBFS) meanwhile.
    type Stretch<'a> = (u32, u32, &'a [(&'a str, f32)]);

    /// Runs `script` frame by frame; the changes, in ms.
    fn changes(script: &[Stretch]) -> Vec<(i64, Option<String>)> {
        let mut speakers = Speakers::default();
        let mut found = Vec::new();
        let mut at_us = 0i64;
        for (from, to, levels) in script {
            let levels: Vec<(String, f32)> = levels.iter().map(|(u, db)| ((*u).to_owned(), level(*db))).collect();
            assert_eq!(at_us / 1000, i64::from(*from), "the script is contiguous");
            while at_us < i64::from(*to) * 1000 {
                if let Some((since, user)) = speakers.observe(at_us, FRAME, &levels) {
                    found.push((since / 1000, user));
                }
                at_us += FRAME.as_micros() as i64;
            }
            at_us = i64::from(*to) * 1000;
        }
        found
    }

    fn user(name: &str) -> Option<String> {
        Some(name.to_owned())
    }

    #[test]
    fn the_loudest_above_the_floor_becomes_the_speaker_at_its_onset_once_held() {
        let found = changes(&[(0, 1000, &[("a", -80.0), ("b", -80.0)]), (1000, 3000, &[("a", -20.0), ("b", -30.0)])]);
        assert_eq!(found.len(), 1, "{found:?}");
        let (onset, who) = &found[0];
        assert_eq!(*who, user("a"));
        assert!((1000..1150).contains(onset), "marked near the onset, not when confirmed: {onset}");
    }

    #[test]
    fn a_lead_shorter_than_the_hold_changes_nothing() {
        let found = changes(&[
            (0, 2000, &[("a", -20.0), ("b", -60.0)]),
            (2000, 2200, &[("a", -60.0), ("b", -20.0)]),
            (2200, 4000, &[("a", -20.0), ("b", -60.0)]),
        ]);
        assert_eq!(found.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>(), [user("a")]);
    }

    #[test]
    fn a_lead_that_holds_changes_the_speaker_and_silence_ends_it() {
        let found = changes(&[
            (0, 2000, &[("a", -20.0), ("b", -60.0)]),
            (2000, 4000, &[("a", -60.0), ("b", -20.0)]),
            (4000, 6000, &[("a", -70.0), ("b", -70.0)]),
        ]);
        let who: Vec<Option<String>> = found.iter().map(|(_, u)| u.clone()).collect();
        assert_eq!(who, [user("a"), user("b"), None]);
        assert!((2000..2200).contains(&found[1].0), "{found:?}");
        assert!((4000..4400).contains(&found[2].0), "{found:?}");
    }

    #[test]
    fn pauses_between_words_shorter_than_the_hold_keep_the_speaker() {
        let mut script: Vec<Stretch> = Vec::new();
        for second in 0..5 {
            script.push((second * 1000, second * 1000 + 800, &[("a", -20.0)]));
            script.push((second * 1000 + 800, second * 1000 + 1000, &[("a", -90.0)]));
        }
        assert_eq!(changes(&script).len(), 1);
    }

    #[test]
    fn a_participant_who_leaves_while_speaking_stops_being_the_speaker() {
        let found = changes(&[(0, 1000, &[("a", -20.0)]), (1000, 2000, &[])]);
        assert_eq!(found.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>(), [user("a"), None]);
    }

    #[test]
    fn the_meter_adds_each_sound_into_the_mix_and_measures_it() {
        let mut meter = Meter::default();
        let (mut left, mut right) = (vec![0.25f32; 4], vec![0.0f32; 4]);
        meter.play("a", &mut left, &mut right, |l, r| {
            l.fill(0.5);
            r.fill(-0.5);
        });
        assert_eq!(left, [0.75; 4]);
        assert_eq!(right, [-0.5; 4]);
        assert_eq!(meter.levels(), [("a".to_owned(), 0.25)]);
    }
}
