//! Callback webhooks: how a delivery is signed, when a failed one is retried, and which
//! answers are final. Pure: the deliverer and the HTTP adapter supply clock, randomness and
//! the network. Every delivery carries two signatures of the same body and timestamp: the
//! Standard Webhooks one (<https://www.standardwebhooks.com/>) and SparkRTC's (FAQ "How Do I
//! Authenticate a Recording Callback?",
//! <https://support.huaweicloud.com/intl/en-us/rtc_faq/rtc_06_0144.html>).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header carrying the event id.
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the attempt's unix time in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying `v1,<base64 HMAC-SHA256>`.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// SparkRTC's header carrying the attempt's random nonce (a decimal number).
pub const HEADER_RTC_RAND: &str = "X-Rtc-Rand";
/// SparkRTC's header carrying the attempt's unix time in seconds, as [`HEADER_TIMESTAMP`].
pub const HEADER_RTC_TIMESTAMP: &str = "X-Rtc-Timestamp";
/// SparkRTC's header carrying lowercase hex HMAC-SHA256 of rand + timestamp + body.
pub const HEADER_RTC_SIGNATURE: &str = "X-Rtc-Signature";

/// How long one attempt may take before it counts as a timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Delay before each attempt, from the first (immediately) on: about 27.6 h in all.
pub const RETRY_SCHEDULE_SECS: [u64; 8] = [0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];

/// Retrying stops only once the schedule is used up *and* this long has passed since the
/// first attempt, so jitter can never shorten the promise of DESIGN §5.
pub const MIN_RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Longest single postponement of a queued message: SQS's maximum visibility timeout (12 h),
/// which it counts from the receive and enforces by refusing a longer one, less the longest a
/// Lambda can hold the batch first (15 min). A longer wait is postponed again when the message
/// comes back.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html>
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 3600 - 15 * 60);

/// Longest receiver's `Retry-After` honoured: a day, the retry window of DESIGN §5. A longer one
/// counts as a day, so the retries stay within the events queue's message retention and
/// receive count.
pub const MAX_RETRY_AFTER: Duration = MIN_RETRY_WINDOW;

/// Jitter applied to every scheduled delay: ±20 %.
pub const JITTER_FRACTION: f64 = 0.2;

/// The headers of one signed delivery attempt: both conventions' signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    /// Unix seconds, in both `webhook-timestamp` and `X-Rtc-Timestamp`.
    pub timestamp: i64,
    /// The Standard Webhooks signature, `v1,<base64>`.
    pub signature: String,
    /// SparkRTC's nonce, `X-Rtc-Rand`.
    pub rtc_rand: String,
    /// SparkRTC's signature, lowercase hex.
    pub rtc_signature: String,
}

impl SignedHeaders {
    /// The headers as (name, value) pairs.
    pub fn pairs(&self) -> [(&'static str, String); 6] {
        [
            (HEADER_ID, self.id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
            (HEADER_RTC_RAND, self.rtc_rand.clone()),
            (HEADER_RTC_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_RTC_SIGNATURE, self.rtc_signature.clone()),
        ]
    }
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Signs `body` as message `id` sent at `timestamp` (unix seconds) with `key`, both ways:
/// Standard Webhooks' `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) and
/// SparkRTC's lowercase hex HMAC-SHA256(key, rand + timestamp + body) with the nonce `rand`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, rand: &str, body: &[u8]) -> SignedHeaders {
    let time = timestamp.to_string();
    let standard = hmac_sha256(key, &[id.as_bytes(), b".", time.as_bytes(), b".", body]);
    let rtc = hmac_sha256(key, &[rand.as_bytes(), time.as_bytes(), body]);
    SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature: format!("v1,{}", BASE64.encode(standard)),
        rtc_rand: rand.to_owned(),
        rtc_signature: hex::encode(rtc),
    }
}

/// A fresh `X-Rtc-Rand`: a random non-negative 63-bit number in decimal, which a receiver
/// may read as a string or as a Java `long`.
pub fn rtc_rand(random: &dyn crate::clock::Random) -> String {
    let mut bytes = [0u8; 8];
    random.fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 1).to_string()
}

/// What one attempt came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver answered with this status (and maybe a `Retry-After`).
    Answered { status: u16, retry_after: Option<Duration> },
    /// No answer within [`ATTEMPT_TIMEOUT`].
    TimedOut,
    /// DNS, connect, TLS or I/O failure: the receiver may come back.
    Unreachable(String),
    /// The URL resolves to an address we may not call (SSRF guard): no retry helps.
    Refused(String),
}

/// How an attempt counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: done.
    Delivered,
    /// Timeout, connection error, 429 or 5xx: try again later.
    Retry,
    /// 3xx (redirects are never followed), other 4xx, a refused address: give up now.
    Final,
}

impl AttemptResult {
    /// Classifies the attempt.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Answered { status, .. } => match status {
                200..=299 => Outcome::Delivered,
                429 | 500..=599 => Outcome::Retry,
                _ => Outcome::Final,
            },
            Self::TimedOut | Self::Unreachable(_) => Outcome::Retry,
            Self::Refused(_) => Outcome::Final,
        }
    }

    /// The status code, when the receiver answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The receiver's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Answered { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A one-line description of a failure, `None` for a 2xx.
    pub fn error(&self) -> Option<String> {
        match self {
            Self::Answered { status: 200..=299, .. } => None,
            Self::Answered { status, .. } => Some(format!("HTTP {status}")),
            Self::TimedOut => Some(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())),
            Self::Unreachable(why) => Some(format!("unreachable: {why}")),
            Self::Refused(why) => Some(format!("refused: {why}")),
        }
    }
}

/// The retry schedule: [`RETRY_SCHEDULE_SECS`] and [`MIN_RETRY_WINDOW`], compressed by a
/// factor in tests so a "down for a minute" outage does not take the real 5-minute retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySchedule {
    scale: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::STANDARD
    }
}

impl RetrySchedule {
    /// The schedule every deployment uses.
    pub const STANDARD: Self = Self { scale: 1.0 };

    /// The schedule with every delay and the retry window multiplied by `scale`, which must be
    /// in (0, 1]: a test setting, never a deployment's.
    pub fn scaled(scale: f64) -> Option<Self> {
        (scale.is_finite() && scale > 0.0 && scale <= 1.0).then_some(Self { scale })
    }

    /// The factor applied to the standard schedule.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The wait before the next attempt after `attempts_made` failed ones, the first of which
    /// was `since_first` ago; `None` when retrying is over. `jitter` in [-1, 1] scales ±20 %; a
    /// larger `retry_after` from the receiver wins (it is never scaled, and counts up to
    /// [`MAX_RETRY_AFTER`]). Only the number of attempts and the window end retrying, never a
    /// long `retry_after`; the wait may be longer than one postponement ([`MAX_DELAY`]).
    pub fn next_delay(
        &self,
        attempts_made: usize,
        since_first: Duration,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        let window = MIN_RETRY_WINDOW.mul_f64(self.scale);
        let scheduled = match RETRY_SCHEDULE_SECS.get(attempts_made) {
            Some(&secs) => {
                Duration::from_secs_f64(secs as f64 * self.scale * (1.0 + JITTER_FRACTION * jitter.clamp(-1.0, 1.0)))
            }
            None if since_first < window => window - since_first,
            None => return None,
        };
        Some(scheduled.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER)))
    }
}

/// [`RetrySchedule::next_delay`] of the standard schedule.
pub fn next_delay(
    attempts_made: usize,
    since_first: Duration,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    RetrySchedule::STANDARD.next_delay(attempts_made, since_first, retry_after, jitter)
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((date - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_test_vector() {
        let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signed = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "1", br#"{"test": 2432232314}"#);
        assert_eq!(signed.signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(signed.pairs()[1], (HEADER_TIMESTAMP, "1614265330".to_owned()));
    }

    #[test]
    fn the_sparkrtc_signature_matches_an_independent_implementation_of_the_faq() {
        // Computed outside this crate, with Python's hmac and with OpenSSL:
        //   python3 -c 'import hmac,hashlib; print(hmac.new(b"8923ab8c2dcef4538923ab8c2dcef453",
        //     b"4711203915" + b"1614265330" + b"{\"event_type\":\"CLOUD_RECORD_OVER\"}", hashlib.sha256).hexdigest())'
        //   printf '%s' '47112039151614265330{"event_type":"CLOUD_RECORD_OVER"}' \
        //     | openssl dgst -sha256 -hmac 8923ab8c2dcef4538923ab8c2dcef453
        let body = br#"{"event_type":"CLOUD_RECORD_OVER"}"#;
        let signed = sign(b"8923ab8c2dcef4538923ab8c2dcef453", "e1", 1614265330, "4711203915", body);
        assert_eq!(signed.rtc_signature, "516aa88ca05d8175212764e3b3190ba8dd321598415d4c446453fbda0db31e38");
        let pairs = signed.pairs();
        assert_eq!(pairs[3], (HEADER_RTC_RAND, "4711203915".to_owned()));
        assert_eq!(pairs[4], (HEADER_RTC_TIMESTAMP, "1614265330".to_owned()), "the same time as webhook-timestamp");
        assert_eq!(pairs[5], (HEADER_RTC_SIGNATURE, signed.rtc_signature.clone()));
    }

    #[test]
    fn the_sparkrtc_nonce_is_a_decimal_number_from_the_random_port() {
        let seq = crate::testing::SeqRandom::new(1);
        let (first, second) = (rtc_rand(&seq), rtc_rand(&seq));
        assert_ne!(first, second);
        for rand in [first, second] {
            assert!(rand.parse::<i64>().is_ok_and(|n| n >= 0), "{rand}");
        }
    }

    #[test]
    fn two_hundreds_are_delivered_and_redirects_and_client_errors_are_final() {
        let answered = |status| AttemptResult::Answered { status, retry_after: None };
        assert_eq!(answered(200).outcome(), Outcome::Delivered);
        assert_eq!(answered(204).outcome(), Outcome::Delivered);
        for status in [301, 302, 307, 400, 401, 404, 410] {
            assert_eq!(answered(status).outcome(), Outcome::Final, "{status}");
        }
        for status in [429, 500, 502, 503, 504] {
            assert_eq!(answered(status).outcome(), Outcome::Retry, "{status}");
        }
        assert_eq!(AttemptResult::TimedOut.outcome(), Outcome::Retry);
        assert_eq!(AttemptResult::Unreachable("refused".into()).outcome(), Outcome::Retry);
        assert_eq!(AttemptResult::Refused("private".into()).outcome(), Outcome::Final);
    }

    #[test]
    fn retries_follow_the_schedule_within_twenty_percent() {
        let secs = |n, jitter| next_delay(n, Duration::ZERO, None, jitter).unwrap().as_secs_f64();
        assert_eq!(secs(1, 0.0), 5.0);
        assert_eq!(secs(2, 0.0), 300.0);
        assert_eq!(secs(3, -1.0), 1440.0);
        assert_eq!(secs(4, 1.0), 8640.0);
        assert_eq!(secs(7, 0.0), 36000.0);
    }

    #[test]
    fn retrying_lasts_at_least_a_day_even_with_the_shortest_jitter() {
        let mut elapsed = Duration::ZERO;
        let mut attempts = 1;
        while let Some(delay) = next_delay(attempts, elapsed, None, -1.0) {
            elapsed += delay;
            attempts += 1;
            assert!(attempts < 20, "retries never end");
        }
        assert!(elapsed >= MIN_RETRY_WINDOW, "{elapsed:?}");
        assert_eq!(next_delay(RETRY_SCHEDULE_SECS.len(), MIN_RETRY_WINDOW, None, 0.0), None);
    }

    #[test]
    fn a_larger_retry_after_wins_and_a_smaller_one_does_not() {
        assert_eq!(next_delay(1, Duration::ZERO, Some(Duration::from_secs(60)), 0.0), Some(Duration::from_secs(60)));
        assert_eq!(next_delay(2, Duration::ZERO, Some(Duration::from_secs(1)), 0.0), Some(Duration::from_secs(300)));
        let day = Duration::from_secs(86400);
        assert_eq!(next_delay(1, Duration::ZERO, Some(day), 0.0), Some(day), "longer than SQS allows at once");
        assert_eq!(next_delay(1, Duration::ZERO, Some(day * 30), 0.0), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn a_long_retry_after_never_ends_retrying_before_the_schedule_is_used_up() {
        // A receiver asking for a day every time: past the window after two attempts, yet every
        // scheduled attempt is still made.
        let day = Duration::from_secs(86400);
        for attempts in 1..RETRY_SCHEDULE_SECS.len() {
            let since_first = day * (attempts as u32 - 1);
            assert_eq!(next_delay(attempts, since_first, Some(day), 1.0), Some(day), "after {attempts} attempts");
        }
        assert_eq!(next_delay(RETRY_SCHEDULE_SECS.len(), day * 7, Some(day), 0.0), None);
    }

    #[test]
    fn the_schedule_spans_about_twenty_seven_and_a_half_hours_and_one_wait_fits_no_single_postponement() {
        let span: u64 = RETRY_SCHEDULE_SECS.iter().sum();
        assert_eq!(span, 27 * 3600 + 35 * 60 + 5);
        let longest = next_delay(RETRY_SCHEDULE_SECS.len() - 1, Duration::ZERO, None, 1.0).unwrap();
        assert!(longest > MAX_DELAY, "{longest:?}: the deliverer must postpone it twice");
    }

    #[test]
    fn a_scaled_schedule_shrinks_every_delay_and_the_window_but_not_retry_after() {
        let tenth = RetrySchedule::scaled(0.1).unwrap();
        assert_eq!(tenth.next_delay(2, Duration::ZERO, None, 0.0), Some(Duration::from_secs(30)));
        assert_eq!(
            tenth.next_delay(2, Duration::ZERO, Some(Duration::from_secs(60)), 0.0),
            Some(Duration::from_secs(60))
        );
        let after_schedule = RETRY_SCHEDULE_SECS.len();
        assert_eq!(tenth.next_delay(after_schedule, Duration::from_secs(8640), None, 0.0), None);
        assert_eq!(
            tenth.next_delay(after_schedule, Duration::from_secs(8000), None, 0.0),
            Some(Duration::from_secs(640))
        );
        for bad in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY] {
            assert_eq!(RetrySchedule::scaled(bad), None, "{bad}");
        }
        assert_eq!(RetrySchedule::default(), RetrySchedule::STANDARD);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
