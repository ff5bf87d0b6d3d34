//! Identifiers. Generated ones are lowercase hex of the seeds' lengths; client-chosen ones
//! (rooms, users, accounts) are checked once here and trusted everywhere after.

use serde::{Deserialize, Serialize};

use crate::clock::Random;
use crate::error::Invalid;

/// Defines a generated id: `$len` lowercase hex characters.
macro_rules! generated_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Length in hex characters.
            pub const LEN: usize = $len;

            /// A fresh random id.
            pub fn generate(random: &dyn Random) -> Self {
                Self(random.hex($len / 2))
            }

            /// Parses an id from a path or body; `None` when it cannot be one of ours.
            pub fn parse(text: &str) -> Option<Self> {
                let ok = text.len() == $len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                ok.then(|| Self(text.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

generated_id!(
    /// An application, 24 hex characters as in the seeds (`5ff9701f2346968bb306cb43`).
    AppId, 24
);
generated_id!(
    /// A record rule, 32 hex characters.
    RuleId, 32
);
generated_id!(
    /// A recording job, 32 hex characters.
    JobId, 32
);
generated_id!(
    /// The per-run unique id the seeds return beside `job_id`, 16 hex characters.
    JobUniqueId, 16
);
generated_id!(
    /// The public half of an API credential, 20 hex characters.
    KeyId, 20
);
generated_id!(
    /// A reserved Jocloud recording resource (`resid`), 32 hex characters.
    ResId, 32
);
generated_id!(
    /// A Jocloud recording (`recordid`), 32 hex characters.
    RecordId, 32
);

impl JobId {
    /// The id a job gets when several callers may create "the same" job at once (an
    /// automatic or a late joiner's recording): equal `seed`s give equal ids, so the
    /// store's conditional create lets only one of them through.
    pub fn derived(seed: &str) -> Self {
        use sha2::{Digest, Sha256};
        Self(hex::encode(&Sha256::digest(seed.as_bytes())[..Self::LEN / 2]))
    }
}

/// Defines a client-chosen name: 1–64 of `[A-Za-z0-9_-]`.
macro_rules! client_name {
    ($(#[$doc:meta])* $name:ident, $field:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The request field this value comes from, for error messages.
            pub const FIELD: &'static str = $field;

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;

            fn try_from(text: String) -> Result<Self, Invalid> {
                check_name(&text, $field)?;
                Ok(Self(text))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Invalid;

            fn try_from(text: &str) -> Result<Self, Invalid> {
                Self::try_from(text.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Longest room, user or account name accepted (SparkRTC's room and user id limit).
pub const MAX_NAME_CHARS: usize = 64;

fn check_name(text: &str, field: &str) -> Result<(), Invalid> {
    if text.is_empty() || text.len() > MAX_NAME_CHARS {
        return Err(Invalid::new(field, format!("must be 1 to {MAX_NAME_CHARS} characters")));
    }
    if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(Invalid::new(field, "may contain only letters, digits, '_' and '-'"));
    }
    Ok(())
}

client_name!(
    /// A room, named by the customer's application.
    RoomId, "room_id"
);
client_name!(
    /// A participant of a room, named by the customer's application.
    UserId, "user_id"
);
client_name!(
    /// The account that owns apps; every resource is reached through it.
    AccountId, "account"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random;

    #[test]
    fn generated_ids_have_the_seed_lengths_and_parse_back() {
        let app = AppId::generate(random());
        assert_eq!(app.as_str().len(), 24);
        assert_eq!(AppId::parse(app.as_str()), Some(app));
        assert_eq!(JobId::generate(random()).as_str().len(), 32);
        assert_eq!(JobUniqueId::generate(random()).as_str().len(), 16);
    }

    #[test]
    fn derived_job_ids_are_stable_well_formed_and_differ_by_seed() {
        let id = JobId::derived("auto|app|room|user|1");
        assert_eq!(JobId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(JobId::derived("auto|app|room|user|1"), id);
        assert_ne!(JobId::derived("auto|app|room|user|2"), id);
    }

    #[test]
    fn ids_of_the_wrong_shape_do_not_parse() {
        assert_eq!(AppId::parse("5ff9701f2346968bb306cb4"), None);
        assert_eq!(AppId::parse("5FF9701F2346968BB306CB43"), None);
        assert_eq!(RuleId::parse("../../etc/passwd"), None);
    }

    #[test]
    fn room_ids_reject_separators_and_overlong_names() {
        assert!(RoomId::try_from("room001").is_ok());
        assert!(RoomId::try_from("room-1_a").is_ok());
        let err = RoomId::try_from("room.1").unwrap_err();
        assert_eq!(err.field, "room_id");
        assert!(UserId::try_from("u".repeat(65)).is_err());
        assert!(UserId::try_from("").is_err());
    }
}
