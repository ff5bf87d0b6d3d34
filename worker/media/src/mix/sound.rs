//! The mix's sound. Each participant's audio, resampled to 48 kHz stereo, waits in a
//! [`Ring`] at the output sample position it is to be played at; the mixer sums the rings
//! frame by frame and a [`Limiter`] keeps the sum under full scale without clipping it.

use std::collections::VecDeque;
use std::time::Duration;

/// Sample rate of the mix, in Hz.
pub(crate) const SAMPLE_RATE: u32 = 48_000;
/// Samples per channel in one AAC frame.
pub(crate) const FRAME_SAMPLES: usize = 1024;
/// Ring capacity in samples per channel (about 1.4 s at 48 kHz: the jitter buffer and more).
const RING_SAMPLES: usize = 1 << 16;

/// One participant's sound, by output sample position (planar stereo).
pub(crate) struct Ring {
    channels: [Box<[f32]>; 2],
    /// Samples before this position were played (or skipped): nothing can be written there.
    played: u64,
}

impl Ring {
    /// An empty (silent) ring whose next sample to play is at `played`.
    pub(crate) fn new(played: u64) -> Self {
        let silence = || vec![0.0; RING_SAMPLES].into_boxed_slice();
        Self { channels: [silence(), silence()], played }
    }

    /// Puts `left`/`right` to be played from sample `position` on, over what was there.
    /// What falls before the play position, or too far beyond it, is dropped.
    pub(crate) fn write(&mut self, position: u64, left: &[f32], right: &[f32]) {
        let len = left.len().min(right.len()) as u64;
        let start = position.max(self.played);
        let end = (position + len).min(self.played + RING_SAMPLES as u64);
        let mut at = start;
        while at < end {
            let slot = (at % RING_SAMPLES as u64) as usize;
            let run = (end - at).min((RING_SAMPLES - slot) as u64) as usize;
            let from = (at - position) as usize;
            self.channels[0][slot..slot + run].copy_from_slice(&left[from..from + run]);
            self.channels[1][slot..slot + run].copy_from_slice(&right[from..from + run]);
            at += run as u64;
        }
    }

    /// Adds the samples from `position` on (as many as `left` holds) into `left`/`right`, and
    /// leaves silence behind: a participant who sends nothing more is not heard again.
    pub(crate) fn play_into(&mut self, position: u64, left: &mut [f32], right: &mut [f32]) {
        // Skipped positions are cleared too, so nothing stale comes round again.
        let skipped_from = self.played.max(position.saturating_sub(RING_SAMPLES as u64));
        self.clear(skipped_from, position);
        let len = left.len().min(right.len());
        for (i, (l, r)) in left.iter_mut().zip(right.iter_mut()).enumerate().take(len) {
            let slot = ((position + i as u64) % RING_SAMPLES as u64) as usize;
            *l += std::mem::take(&mut self.channels[0][slot]);
            *r += std::mem::take(&mut self.channels[1][slot]);
        }
        self.played = self.played.max(position + len as u64);
    }

    fn clear(&mut self, from: u64, to: u64) {
        for at in from..to {
            let slot = (at % RING_SAMPLES as u64) as usize;
            self.channels[0][slot] = 0.0;
            self.channels[1][slot] = 0.0;
        }
    }
}

/// Highest peak the limiter lets through: −3 dBFS. AAC coding overshoots a dense, limited
/// mix (nine tones at −1 dBFS decoded at 0.9994 of full scale), so −1 dBFS was not enough.
const CEILING: f32 = 0.708;
/// How far the limiter looks ahead, so it turns the gain down smoothly before a peak.
const LOOKAHEAD: Duration = Duration::from_millis(2);
/// Time constant of the gain coming back up after a peak.
const RELEASE: Duration = Duration::from_millis(200);

/// A look-ahead peak limiter for the summed sound: the gain falls (fast, smoothly) ahead of
/// any peak above [`CEILING`] and comes back slowly, so the output never exceeds the ceiling
/// and is never clipped. Delays the sound by [`LOOKAHEAD`].
pub(crate) struct Limiter {
    /// Samples waiting to leave, with the gain each needs at most.
    delay: VecDeque<(f32, f32, f32)>,
    /// Monotonic queue of (sample number, gain needed): its front is the lowest gain any
    /// sample in the delay line needs.
    needs: VecDeque<(u64, f32)>,
    count: u64,
    gain: f32,
    attack: f32,
    release: f32,
}

impl Limiter {
    /// A limiter for sound at `sample_rate`.
    pub(crate) fn new(sample_rate: u32) -> Self {
        let lookahead = ((LOOKAHEAD.as_secs_f64() * f64::from(sample_rate)).round() as usize).max(1);
        let per_sample = |samples: f64| (1.0 - (-1.0 / samples).exp()) as f32;
        Self {
            delay: std::iter::repeat_n((0.0, 0.0, 1.0), lookahead).collect(),
            needs: VecDeque::with_capacity(lookahead + 1),
            count: 0,
            gain: 1.0,
            // Most of the way down within the look-ahead; the last bit is enforced per sample.
            attack: per_sample(lookahead as f64 / 5.0),
            release: per_sample(RELEASE.as_secs_f64() * f64::from(sample_rate)),
        }
    }

    /// How many samples the limiter delays the sound by (its look-ahead).
    pub(crate) fn delay_samples(&self) -> u64 {
        self.delay.len() as u64
    }

    /// Limits `left`/`right` in place (delayed by the look-ahead).
    pub(crate) fn process(&mut self, left: &mut [f32], right: &mut [f32]) {
        let window = self.delay.len() as u64;
        for (l, r) in left.iter_mut().zip(right.iter_mut()) {
            let (inl, inr) = (finite(*l), finite(*r));
            let peak = inl.abs().max(inr.abs());
            let need = if peak > CEILING { CEILING / peak } else { 1.0 };
            while self.needs.back().is_some_and(|&(_, n)| n >= need) {
                self.needs.pop_back();
            }
            self.needs.push_back((self.count, need));
            while self.needs.front().is_some_and(|&(at, _)| at + window < self.count) {
                self.needs.pop_front();
            }
            let target = self.needs.front().map_or(1.0, |&(_, n)| n);
            let rate = if target < self.gain { self.attack } else { self.release };
            self.gain += (target - self.gain) * rate;
            self.delay.push_back((inl, inr, need));
            let (outl, outr, limit) = self.delay.pop_front().unwrap_or((0.0, 0.0, 1.0));
            let gain = self.gain.min(limit);
            // The clamp only takes off float rounding (`peak * CEILING / peak`).
            *l = (outl * gain).clamp(-CEILING, CEILING);
            *r = (outr * gain).clamp(-CEILING, CEILING);
            self.count += 1;
        }
    }
}

fn finite(sample: f32) -> f32 {
    if sample.is_finite() {
        sample
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f32, hz: f32, samples: usize) -> Vec<f32> {
        let step = std::f32::consts::TAU * hz / SAMPLE_RATE as f32;
        (0..samples).map(|i| amplitude * (step * i as f32).sin()).collect()
    }

    fn peak(samples: &[f32]) -> f32 {
        samples.iter().fold(0.0, |peak, s| peak.max(s.abs()))
    }

    fn limited(input: &[f32]) -> Vec<f32> {
        let mut limiter = Limiter::new(SAMPLE_RATE);
        let (mut left, mut right) = (input.to_vec(), input.to_vec());
        for (l, r) in left.chunks_mut(FRAME_SAMPLES).zip(right.chunks_mut(FRAME_SAMPLES)) {
            limiter.process(l, r);
        }
        assert_eq!(left, right);
        left
    }

    #[test]
    fn a_sum_far_above_full_scale_never_leaves_the_ceiling() {
        let loud: Vec<f32> =
            tone(2.5, 440.0, 48_000).iter().zip(tone(1.0, 660.0, 48_000)).map(|(a, b)| a + b).collect();
        let out = limited(&loud);
        assert!(peak(&out) <= CEILING, "{}", peak(&out));
        assert!(peak(&out[24_000..]) > 0.8 * CEILING, "turned down, not muted: {}", peak(&out[24_000..]));
    }

    #[test]
    fn a_loud_tone_is_turned_down_smoothly_not_clipped() {
        let input = tone(3.0, 440.0, 48_000);
        let out = limited(&input);
        let lookahead = 96;
        // Once settled, the output is the input times one gain: a sine, no flattened tops.
        let gain = peak(&out[24_000..]) / 3.0;
        let worst = (24_000..48_000).map(|i| (out[i] - gain * input[i - lookahead]).abs()).fold(0.0, f32::max);
        assert!(worst < 0.01, "distortion {worst}");
        assert!(gain > 0.9 * CEILING / 3.0, "the peaks reach up to the ceiling: gain {gain}");
    }

    #[test]
    fn a_quiet_signal_passes_unchanged_after_the_lookahead() {
        let input = tone(0.5, 1000.0, 4800);
        let out = limited(&input);
        assert!(out[..96].iter().all(|s| *s == 0.0));
        assert!(out[96..].iter().zip(&input).all(|(o, i)| (o - i).abs() < 1e-6));
    }

    #[test]
    fn the_gain_comes_back_slowly_after_a_loud_burst() {
        let mut input = tone(4.0, 440.0, 9600);
        input.extend(tone(0.5, 440.0, 96_000));
        let out = limited(&input);
        let soon = peak(&out[9600 + 960..9600 + 1920]);
        let later = peak(&out[9600 + 72_000..]);
        assert!(soon < 0.3, "the gain is still down 20 ms after the burst: {soon}");
        assert!(later > 0.49, "and back to unity after 1.5 s: {later}");
    }

    #[test]
    fn nan_and_infinity_become_silence() {
        let out = limited(&[f32::NAN, f32::INFINITY, 0.1].repeat(100));
        assert!(out.iter().all(|s| s.is_finite() && s.abs() <= CEILING));
    }

    #[test]
    fn a_ring_plays_what_was_written_at_its_position_once() {
        let mut ring = Ring::new(0);
        ring.write(100, &[0.5; 50], &[-0.5; 50]);
        let (mut left, mut right) = ([0.0f32; 200], [0.0f32; 200]);
        ring.play_into(0, &mut left, &mut right);
        assert!(left[..100].iter().all(|s| *s == 0.0));
        assert!(left[100..150].iter().all(|s| *s == 0.5) && right[100..150].iter().all(|s| *s == -0.5));
        assert!(left[150..].iter().all(|s| *s == 0.0));
        let (mut again, mut again_right) = ([0.0f32; 200], [0.0f32; 200]);
        ring.play_into(200, &mut again, &mut again_right);
        assert!(again.iter().all(|s| *s == 0.0), "played samples do not come round again");
    }

    #[test]
    fn a_ring_drops_what_is_late_or_too_far_ahead() {
        let mut ring = Ring::new(1000);
        ring.write(900, &[1.0; 200], &[1.0; 200]);
        ring.write(1000 + RING_SAMPLES as u64, &[1.0; 10], &[1.0; 10]);
        let (mut left, mut right) = (vec![0.0f32; RING_SAMPLES], vec![0.0f32; RING_SAMPLES]);
        ring.play_into(1000, &mut left, &mut right);
        assert_eq!(left.iter().filter(|s| **s == 1.0).count(), 100, "only the part after the play position");
        assert!(left[100..].iter().all(|s| *s == 0.0));
    }

    #[test]
    fn rings_add_up() {
        let (mut a, mut b) = (Ring::new(0), Ring::new(0));
        a.write(0, &[0.25; 8], &[0.25; 8]);
        b.write(4, &[0.5; 8], &[0.5; 8]);
        let (mut left, mut right) = ([0.0f32; 12], [0.0f32; 12]);
        a.play_into(0, &mut left, &mut right);
        b.play_into(0, &mut left, &mut right);
        assert_eq!(left, [0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75, 0.5, 0.5, 0.5, 0.5]);
    }
}
