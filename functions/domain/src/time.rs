//! Timestamps as the seeds write them: UTC, second precision, `YYYY-MM-DDThh:mm:ssZ`.

use chrono::{DateTime, SecondsFormat, SubsecRound, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant, serialised as `2021-04-21T10:29:33Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// `time` to the second (what the API shows and stores).
    pub fn at(time: DateTime<Utc>) -> Self {
        Self(time.trunc_subsecs(0))
    }

    /// The zero time SparkRTC writes for "not yet" (`0001-01-01T00:00:00Z`).
    pub fn zero() -> Self {
        Self(Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).single().unwrap_or_default())
    }

    /// A timestamp as [`Display`](std::fmt::Display) writes it (any RFC 3339 time).
    pub fn parse(text: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(text).ok().map(|t| Self(t.with_timezone(&Utc)))
    }

    /// The underlying chrono value.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(value: DateTime<Utc>) -> Self {
        Self(value)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_like_the_seeds() {
        let t = Timestamp::from(Utc.with_ymd_and_hms(2021, 4, 21, 10, 29, 33).unwrap());
        assert_eq!(t.to_string(), "2021-04-21T10:29:33Z");
        assert_eq!(Timestamp::zero().to_string(), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn timestamps_round_trip_through_json() {
        let t = Timestamp::from(Utc.with_ymd_and_hms(2021, 4, 21, 10, 29, 33).unwrap());
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }
}
