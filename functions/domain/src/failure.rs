//! Why a job failed, as its tenant sees it: a stable code and a short message, shown as the
//! `CLOUD_RECORD_FAILED` event's `detail_message` (`STORAGE_ACCESS_DENIED: …`). The cause —
//! an AWS error chain, an FFmpeg message — goes to the logs under the job's id, never to the
//! tenant.

use std::fmt;

/// What a tenant is told about a failed job. Codes are stable: clients may match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// The rule names a bucket of the tenant's own without `obs_addr.role_arn`.
    StorageRoleRequired,
    /// The tenant's role could not be assumed, or the bucket refused the recording's writes.
    StorageAccessDenied,
    /// The bucket refused a request for another reason (no such bucket, another region).
    StorageRejected,
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
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::StorageRoleRequired => "STORAGE_ROLE_REQUIRED",
            Self::StorageAccessDenied => "STORAGE_ACCESS_DENIED",
            Self::StorageRejected => "STORAGE_REJECTED",
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
            Self::StorageRoleRequired => {
                "obs_addr.bucket is not this deployment's recordings bucket; a bucket of your own needs obs_addr.role_arn"
            }
            Self::StorageAccessDenied => "the bucket refused the recording's writes",
            Self::StorageRejected => "the bucket refused the recording (does it exist, in obs_addr.location?)",
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
    /// What the tenant is told instead of the code's own message, when we know more that
    /// is theirs to know (never a cause's text).
    pub message: Option<String>,
    /// The full cause, for the log.
    pub cause: String,
}

impl Failure {
    /// A failure with `code` and its `cause`.
    pub fn new(code: FailureCode, cause: impl Into<String>) -> Self {
        Self { code, message: None, cause: cause.into() }
    }

    /// A failure with `code`, telling the tenant `message` instead of the code's own.
    pub fn told(code: FailureCode, message: impl Into<String>, cause: impl Into<String>) -> Self {
        Self { code, message: Some(message.into()), cause: cause.into() }
    }

    /// What the tenant is told: the code and its message.
    pub fn detail_message(&self) -> String {
        match &self.message {
            Some(message) => format!("{}: {message}", self.code.as_str()),
            None => self.code.to_string(),
        }
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
            StorageRoleRequired,
            StorageAccessDenied,
            StorageRejected,
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
