//! Why a job failed, as its tenant sees it: a stable code and a short message, shown as the
//! `CLOUD_RECORD_FAILED` event's `detail_message` (`STORAGE_ACCESS_DENIED: …`). The cause —
//! an AWS error chain, an FFmpeg message — goes to the logs under the job's id, never to the
//! tenant.

use std::fmt;

/// What a tenant is told about a failed job. Codes are stable: clients may match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// The storage refused the recording's bucket for good (access denied, no such bucket).
    StorageAccessDenied,
    /// The storage failed for longer than retries cover.
    StorageUnavailable,
    /// The job's record rule was deleted before it started recording.
    RuleNotFound,
    /// Uploads fell so far behind that the worker's spool budget ran out.
    UploadsBehind,
    /// The worker's spool disk filled up.
    SpoolFull,
    /// The media could not be read, decoded or written.
    MediaFailed,
    /// Something of ours failed.
    InternalError,
}

impl FailureCode {
    /// The code as clients see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StorageAccessDenied => "STORAGE_ACCESS_DENIED",
            Self::StorageUnavailable => "STORAGE_UNAVAILABLE",
            Self::RuleNotFound => "RULE_NOT_FOUND",
            Self::UploadsBehind => "UPLOADS_BEHIND",
            Self::SpoolFull => "SPOOL_FULL",
            Self::MediaFailed => "MEDIA_FAILED",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    /// A short explanation a tenant can act on.
    pub fn message(self) -> &'static str {
        match self {
            Self::StorageAccessDenied => "the bucket refused the recording (it does not exist or may not be written)",
            Self::StorageUnavailable => "the storage could not be reached; files uploaded so far are kept",
            Self::RuleNotFound => "the job's record rule was deleted",
            Self::UploadsBehind => {
                "uploads fell behind the recording past the worker's spool budget; files uploaded so far are kept"
            }
            Self::SpoolFull => "the worker's disk filled up (no space left); files uploaded so far are kept",
            Self::MediaFailed => "the participant's media could not be recorded",
            Self::InternalError => "internal error; files uploaded so far are kept",
        }
    }
}

impl fmt::Display for FailureCode {
    /// `CODE: message`, the form of a `detail_message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.as_str(), self.message())
    }
}

/// A failure: the code the tenant sees, and the cause only the logs see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: FailureCode,
    /// The full cause, for the log.
    pub cause: String,
}

impl Failure {
    /// A failure with `code` and its `cause`.
    pub fn new(code: FailureCode, cause: impl Into<String>) -> Self {
        Self { code, cause: cause.into() }
    }

    /// What the tenant is told: the code and its message.
    pub fn detail_message(&self) -> String {
        self.code.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_message_is_the_code_and_its_message_never_the_cause() {
        let failure = Failure::new(
            FailureCode::StorageAccessDenied,
            "service error: AccessDenied: arn:aws:iam::123456789012:role/worker is not authorized",
        );
        let detail = failure.detail_message();
        assert!(detail.starts_with("STORAGE_ACCESS_DENIED: "), "{detail}");
        assert!(!detail.contains("arn:aws") && !detail.contains("service error"), "{detail}");
    }

    #[test]
    fn every_code_is_upper_snake_case_with_a_message() {
        use FailureCode::*;
        let codes = [
            StorageAccessDenied,
            StorageUnavailable,
            RuleNotFound,
            UploadsBehind,
            SpoolFull,
            MediaFailed,
            InternalError,
        ];
        for code in codes {
            assert!(code.as_str().bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{code:?}");
            assert!(!code.message().is_empty());
        }
    }
}
