//! The variables the local stack exports (`stack.py` writes them to `.local/env` and into the
//! environment of `make test` and `make bench-*`), and the benchmarks' knobs.

use std::ops::RangeInclusive;
use std::time::Duration;

/// The gateway's base URL, e.g. `http://127.0.0.1:3000`.
pub const HTTP_URL: &str = "ROOMREC_HTTP_URL";
/// The key id of the stack's development credential.
pub const DEV_KEY_ID: &str = "ROOMREC_DEV_KEY_ID";
/// The secret of the stack's development credential.
pub const DEV_SECRET: &str = "ROOMREC_DEV_SECRET";
/// nginx-rtmp's publishing URL, `rtmp://127.0.0.1:<port>/live`.
pub const RTMP_URL: &str = "ROOMREC_RTMP_URL";

/// A variable the stack exports is not set: the program runs outside its make target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} is not set: run me through `make test` or `make bench-…`, which start the stack and export it")]
pub struct MissingVar {
    /// The variable's name.
    pub name: String,
}

/// A variable the stack exports.
pub fn stack_var(name: &str) -> Result<String, MissingVar> {
    std::env::var(name).map_err(|_| MissingVar { name: name.to_owned() })
}

/// A benchmark knob set to something it cannot be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnobError {
    /// Not a whole number.
    #[error("{name}={text:?} is not a whole number")]
    NotANumber { name: String, text: String },
    /// A number of seconds below the least the benchmark can measure in.
    #[error("{name} must be at least {least} s")]
    TooShort { name: String, least: u64 },
    /// A count outside the range the benchmark supports.
    #[error("{name}: {text:?} is not {} to {}", range.start(), range.end())]
    OutOfRange { name: String, text: String, range: RangeInclusive<usize> },
    /// A list of counts with none in it.
    #[error("{name} lists no N")]
    Empty { name: String },
}

/// The whole number in `name`, or `default` when it is unset or blank.
pub fn count_var(name: &str, default: usize) -> Result<usize, KnobError> {
    match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| KnobError::NotANumber { name: name.to_owned(), text }),
    }
}

/// At least `least` seconds from `name`, or `default` when it is unset or blank.
pub fn seconds_var(name: &str, default: u64, least: u64) -> Result<Duration, KnobError> {
    let seconds = count_var(name, default as usize)? as u64;
    if seconds < least {
        return Err(KnobError::TooShort { name: name.to_owned(), least });
    }
    Ok(Duration::from_secs(seconds))
}

/// The counts in `text` (the value of `name`), separated by spaces or commas, each in `range`.
pub fn parse_counts(name: &str, text: &str, range: RangeInclusive<usize>) -> Result<Vec<usize>, KnobError> {
    let counts = text
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>().ok().filter(|n| range.contains(n)).ok_or_else(|| KnobError::OutOfRange {
                name: name.to_owned(),
                text: s.to_owned(),
                range: range.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if counts.is_empty() {
        return Err(KnobError::Empty { name: name.to_owned() });
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_listed_with_spaces_or_commas_and_bounded() {
        assert_eq!(parse_counts("NS", "1 10 50", 1..=64), Ok(vec![1, 10, 50]));
        assert_eq!(parse_counts("NS", " 2,3 ", 1..=64), Ok(vec![2, 3]));
        assert_eq!(parse_counts("NS", "", 1..=64), Err(KnobError::Empty { name: "NS".into() }));
        let err = parse_counts("NS", "65", 1..=64).expect_err("out of range");
        assert_eq!(err.to_string(), "NS: \"65\" is not 1 to 64");
        assert!(parse_counts("NS", "ten", 1..=64).is_err());
    }

    #[test]
    fn unset_knobs_take_their_default() {
        assert_eq!(count_var("ROOMREC_TESTKIT_UNSET_KNOB", 7), Ok(7));
        assert_eq!(seconds_var("ROOMREC_TESTKIT_UNSET_KNOB", 30, 10), Ok(Duration::from_secs(30)));
        assert_eq!(
            seconds_var("ROOMREC_TESTKIT_UNSET_KNOB", 5, 10),
            Err(KnobError::TooShort { name: "ROOMREC_TESTKIT_UNSET_KNOB".into(), least: 10 })
        );
        assert_eq!(
            stack_var("ROOMREC_TESTKIT_UNSET_KNOB").map_err(|e| e.name),
            Err("ROOMREC_TESTKIT_UNSET_KNOB".into())
        );
    }
}
