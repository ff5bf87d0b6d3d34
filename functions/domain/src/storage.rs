//! Whose storage a job reads and writes: the deployment's recordings bucket, every key under
//! the app's own prefix ([`naming::key_root`]), or the tenant's own bucket through the IAM role
//! the tenant lets roomrec assume (`obs_addr.role_arn`, with the owning account's id as the
//! ExternalId, AWS's answer to the confused deputy). Nothing else is reachable from a rule.

use crate::error::BackendError;
use crate::failure::FailureCode;
use crate::ids::{AccountId, AppId, JobId};
use crate::naming;
use crate::rule::RecordRule;
pub use crate::rule::RoleArn;
use crate::url::S3Uri;

/// Code of the failure of a job whose rule names a bucket of its own without a role.
pub const ROLE_REQUIRED: &str = FailureCode::StorageRoleRequired.as_str();

/// Largest background image read, in bytes.
pub const MAX_IMAGE_BYTES: u64 = 10 * 1024 * 1024;
/// Widest and tallest background image decoded, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 4096;
/// Most distinct background images one job reads.
pub const MAX_IMAGES_PER_JOB: usize = 25;

/// Longest STS role session name (<https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>).
const MAX_SESSION_NAME_CHARS: usize = 64;

/// The credentials a job's objects are reached with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Access {
    /// The worker's own: the deployment's recordings bucket only (its role allows no other).
    Worker,
    /// A session of the tenant's role.
    Role {
        role_arn: RoleArn,
        /// The owning account's id, which the role's trust policy requires.
        external_id: String,
        /// Names the job in the tenant's CloudTrail.
        session_name: String,
        /// The bucket's region (`obs_addr.location`).
        region: String,
    },
}

/// Where a job's objects are and how they are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub bucket: String,
    pub access: Access,
    /// Every key the job reads or writes starts with this (`{app_id}/` in the deployment's
    /// bucket; nothing in the tenant's own).
    pub key_root: String,
}

/// A rule's storage cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageRefused {
    /// The rule names a bucket that is not the deployment's, and no role to reach it with.
    #[error(
        "{ROLE_REQUIRED}: obs_addr.bucket {bucket} is not this deployment's recordings bucket; a bucket of your own needs obs_addr.role_arn"
    )]
    RoleRequired { bucket: String },
}

/// Where the jobs of `rule` (owned by `account`) keep their objects, the deployment's
/// recordings bucket being `deployment_bucket`; `job` names the role session.
pub fn storage(
    rule: &RecordRule,
    deployment_bucket: &str,
    account: &AccountId,
    job: &JobId,
) -> Result<Storage, StorageRefused> {
    storage_as(rule, deployment_bucket, account, session_name(job))
}

/// [`storage`] with the role session named `session_name` (a preflight's, not a job's).
pub fn storage_as(
    rule: &RecordRule,
    deployment_bucket: &str,
    account: &AccountId,
    session_name: String,
) -> Result<Storage, StorageRefused> {
    let bucket = rule.obs_addr.bucket.clone();
    let key_root = naming::app_root(rule);
    match &rule.obs_addr.role_arn {
        Some(role_arn) => Ok(Storage {
            bucket,
            key_root,
            access: Access::Role {
                role_arn: role_arn.clone(),
                external_id: account.to_string(),
                session_name,
                region: rule.obs_addr.location.clone(),
            },
        }),
        None if bucket == deployment_bucket => Ok(Storage { bucket, key_root, access: Access::Worker }),
        None => Err(StorageRefused::RoleRequired { bucket }),
    }
}

/// `roomrec-{job_id}`: what the tenant's CloudTrail shows as the session.
fn session_name(job: &JobId) -> String {
    let mut name = format!("roomrec-{job}");
    name.truncate(MAX_SESSION_NAME_CHARS);
    name
}

impl Storage {
    /// Whether a job of `app` may read the image at `uri`: it must be in this storage's bucket
    /// and, in the deployment's, under the app's own prefix.
    pub fn may_read(&self, uri: &S3Uri, app: &AppId) -> bool {
        let under_app = match self.access {
            Access::Worker => naming::is_under_app(uri.key(), app),
            Access::Role { .. } => true,
        };
        uri.bucket() == self.bucket && under_app
    }
}

/// The tenant's role could not be assumed, or object storage could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// STS refused: the role does not exist, does not trust the deployment, or wants another
    /// ExternalId.
    #[error("the role was refused")]
    Denied(#[source] BackendError),
    /// STS failed for a passing reason; trying again may work.
    #[error("the role could not be assumed")]
    Unavailable(#[source] BackendError),
}

impl crate::retry::Transient for AccessError {
    fn is_transient(&self) -> bool {
        matches!(self, AccessError::Unavailable(_))
    }
}

/// A request object storage refused because the caller lacks permission (HTTP 403); carried
/// as the source of [`StoreError::Rejected`](crate::error::StoreError::Rejected), so a job's
/// failure can say so without the backend's text.
#[derive(Debug, thiserror::Error)]
#[error("access denied")]
pub struct Forbidden(#[source] pub BackendError);

/// What a capped read found: a missing object, one too large to read, or its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capped {
    Missing,
    /// Larger than the cap; nothing past the cap was read.
    TooLarge,
    Read(Vec<u8>),
}

/// The width and height a PNG or JPEG image says it has, read from its header; `None` when
/// `bytes` are neither or the header is cut short.
pub fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.starts_with(PNG_SIGNATURE) {
        // The IHDR chunk comes first: length, "IHDR", width, height (big-endian).
        let word = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        return (bytes.get(12..16) == Some(b"IHDR")).then_some((word(16)?, word(20)?));
    }
    if !bytes.starts_with(b"\xff\xd8") {
        return None;
    }
    // JPEG: walk the marker segments to the first start-of-frame (SOF0–SOF15 but DHT, JPG, DAC).
    let mut at = 2;
    loop {
        while bytes.get(at) == Some(&0xff) && bytes.get(at + 1) == Some(&0xff) {
            at += 1;
        }
        let [0xff, marker, high, low] = *bytes.get(at..at + 4)? else { return None };
        let length = usize::from(u16::from_be_bytes([high, low]));
        if (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let frame = bytes.get(at + 5..at + 9)?;
            let height = u32::from(u16::from_be_bytes([frame[0], frame[1]]));
            let width = u32::from(u16::from_be_bytes([frame[2], frame[3]]));
            return Some((width, height));
        }
        if length < 2 {
            return None;
        }
        at += 2 + length;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AppId;
    use crate::testing::{now, random};

    fn rule(obs_addr: &str) -> RecordRule {
        let body = format!(r#"{{"obs_addr":{obs_addr},"record_formats":["HLS"]}}"#);
        RecordRule::create(AppId::generate(random()), serde_json::from_str(&body).unwrap(), random(), now()).unwrap()
    }

    fn account() -> AccountId {
        AccountId::try_from("acme").unwrap()
    }

    #[test]
    fn role_arns_are_iam_roles_of_a_twelve_digit_account() {
        for ok in [
            "arn:aws:iam::123456789012:role/roomrec-writer",
            "arn:aws:iam::123456789012:role/service/media/roomrec+writer@x",
            "arn:aws-cn:iam::123456789012:role/r",
        ] {
            assert!(RoleArn::try_from(ok.to_owned()).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "arn:aws:iam::12345678901:role/r",
            "arn:aws:iam::123456789012:user/r",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
            "arn:aws:iam::123456789012:role//r",
            "arn:aws:sts::123456789012:assumed-role/r/s",
        ] {
            let err = RoleArn::try_from(bad.to_owned()).unwrap_err();
            assert_eq!(err.field, "role_arn", "{bad}");
        }
    }

    #[test]
    fn a_rule_without_a_role_writes_the_deployment_bucket_under_the_app() {
        let rule = rule(r#"{"bucket":"deployment","location":"eu-west-1","object":"x/"}"#);
        let job = JobId::generate(random());
        let storage = storage(&rule, "deployment", &account(), &job).unwrap();
        assert_eq!(storage.access, Access::Worker);
        assert_eq!(storage.key_root, format!("{}/", rule.app_id));
    }

    #[test]
    fn a_rule_naming_another_bucket_without_a_role_is_refused_with_its_code() {
        let rule = rule(r#"{"bucket":"someone-elses","location":"eu-west-1"}"#);
        let refused = storage(&rule, "deployment", &account(), &JobId::generate(random())).unwrap_err();
        assert_eq!(refused, StorageRefused::RoleRequired { bucket: "someone-elses".into() });
        let detail = refused.to_string();
        assert!(detail.starts_with("STORAGE_ROLE_REQUIRED: ") && detail.contains("obs_addr.role_arn"), "{detail}");
    }

    #[test]
    fn a_rule_with_a_role_assumes_it_with_the_account_as_external_id_and_the_job_as_session() {
        let rule = rule(
            r#"{"bucket":"tenant-bucket","location":"eu-west-1","object":"rec/","role_arn":"arn:aws:iam::210987654321:role/w"}"#,
        );
        let job = JobId::generate(random());
        let storage = storage(&rule, "deployment", &account(), &job).unwrap();
        let Access::Role { role_arn, external_id, session_name, region } = &storage.access else {
            panic!("a role session")
        };
        assert_eq!(region, "eu-west-1");
        assert_eq!(role_arn.as_str(), "arn:aws:iam::210987654321:role/w");
        assert_eq!(external_id, "acme");
        assert_eq!(session_name, &format!("roomrec-{job}"));
        assert!(session_name.len() <= MAX_SESSION_NAME_CHARS);
        assert_eq!((storage.bucket.as_str(), storage.key_root.as_str()), ("tenant-bucket", ""));
    }

    #[test]
    fn images_are_read_from_the_jobs_own_storage_only() {
        let rule = rule(r#"{"bucket":"deployment","location":"eu-west-1"}"#);
        let app = rule.app_id.clone();
        let storage = storage(&rule, "deployment", &account(), &JobId::generate(random())).unwrap();
        let uri = |text: &str| S3Uri::parse(text, "image").unwrap();
        assert!(storage.may_read(&uri(&format!("s3://deployment/{app}/bg.png")), &app));
        assert!(!storage.may_read(&uri("s3://deployment/bg.png"), &app), "outside the app's prefix");
        let other = AppId::generate(random());
        assert!(!storage.may_read(&uri(&format!("s3://deployment/{other}/bg.png")), &app), "another app's");
        assert!(!storage.may_read(&uri(&format!("s3://deployment/{app}/../{other}/bg.png")), &app));
        assert!(!storage.may_read(&uri(&format!("s3://elsewhere/{app}/bg.png")), &app), "another bucket");
    }

    #[test]
    fn image_headers_give_the_size_without_decoding() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(5000u32.to_be_bytes());
        png.extend(20u32.to_be_bytes());
        assert_eq!(image_size(&png), Some((5000, 20)));
        // SOI, an APP0 segment of 4 bytes, then SOF0: length, precision, height 300, width 400.
        let jpeg = b"\xff\xd8\xff\xe0\x00\x04ab\xff\xc0\x00\x11\x08\x01\x2c\x01\x90".to_vec();
        assert_eq!(image_size(&jpeg), Some((400, 300)));
        assert_eq!(image_size(b"GIF89a"), None);
        assert_eq!(image_size(b"\xff\xd8\xff\xe0\x00"), None, "cut short");
    }
}
