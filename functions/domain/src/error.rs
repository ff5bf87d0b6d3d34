//! Errors the core reports: a rejected value (naming its field), what a port can fail with,
//! and what a use case can end in.

/// A boxed error from an adapter's backend, kept as a source for the log.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item changed (or existed) since it was read.
    #[error("the item changed concurrently")]
    Conflict,
    /// The backend failed or answered something unreadable; trying again may work.
    #[error("store backend failed")]
    Backend(#[source] BackendError),
    /// The backend refused the request for good (no such bucket, access denied): trying
    /// again cannot help.
    #[error("store backend refused the request")]
    Rejected(#[source] BackendError),
}

/// A queue failed to take a message.
#[derive(Debug, thiserror::Error)]
#[error("job queue failed")]
pub struct QueueError(#[source] pub BackendError);

/// A value that failed to parse, with the request field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// Dotted path of the offending field, as the client wrote it (`mp4_config.record_cycle`).
    pub field: String,
    /// What is wrong, in words a client can act on.
    pub reason: String,
}

impl Invalid {
    /// A rejection of `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }

    /// The same rejection, nested under `parent` (`record_cycle` → `mp4_config.record_cycle`).
    pub fn under(self, parent: &str) -> Self {
        Self { field: format!("{parent}.{}", self.field), reason: self.reason }
    }
}

/// A create refused because it would take the account past one of its quotas
/// ([`quota`](crate::quota) decides).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QuotaExceeded {
    /// The quota's name (`active_jobs`, `mix_participants`, `waiting_jobs`).
    pub quota: &'static str,
    /// The limit and what reached it, e.g. `active_jobs limit 50 reached`.
    pub message: String,
}

/// How a use case can fail; the HTTP edge maps each variant to one status and error code.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    /// The request carried a value the API does not accept.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The named resource does not exist for this caller (foreign ones included).
    #[error("{field}: {what} not found")]
    NotFound { field: &'static str, what: &'static str },
    /// The resource is in a state that forbids the operation.
    #[error("{0}")]
    Conflict(String),
    /// The named resource existed but is no longer valid (an expired reservation).
    #[error("{field}: {reason}")]
    Expired { field: &'static str, reason: String },
    /// The account is at one of its quotas.
    #[error(transparent)]
    QuotaExceeded(#[from] QuotaExceeded),
    /// Storage failed; the cause stays in the log, never in a response.
    #[error("storage failed")]
    Store(#[source] StoreError),
    /// The job queue failed.
    #[error("job queue failed")]
    Queue(#[source] QueueError),
}

impl From<StoreError> for UseCaseError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl From<QueueError> for UseCaseError {
    fn from(err: QueueError) -> Self {
        Self::Queue(err)
    }
}

impl UseCaseError {
    /// Shorthand for a missing resource named by `field`.
    pub fn not_found(field: &'static str, what: &'static str) -> Self {
        Self::NotFound { field, what }
    }
}

/// Every cause in `err`'s chain joined with ": ", for logs (never for responses).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
