//! Recordings in S3: whole objects for HLS segments and playlists, multipart uploads for MP4.

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use roomrec_domain::ports::{Blobs, FilePart, IfStored, Object, StoreError};
use roomrec_domain::storage::{Capped, Forbidden};

/// [`Blobs`] on S3.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: Client,
}

fn backend<E: std::error::Error + Send + Sync + 'static>(err: E) -> StoreError {
    StoreError::Backend(Box::new(err))
}

/// An S3 failure as the core sees it: a failed precondition (412) is `Conflict`; a request
/// S3 refuses for good (any other 3xx or 4xx but a timeout or throttling: a bucket in another
/// region, no such bucket, access denied, an upload completed meanwhile) is `Rejected`, an
/// access denied (403) with [`Forbidden`] as its source; anything else `Backend`, retried.
fn s3_error<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let passing = passing(err.code());
    match err.raw_response().map(|r| r.status().as_u16()) {
        Some(412) => StoreError::Conflict,
        // Said as such, so a job's failure can name it without S3's text.
        Some(403) => StoreError::Rejected(Box::new(Forbidden(Box::new(err)))),
        Some(408 | 429) => backend(err),
        Some(300..=499) if !passing => StoreError::Rejected(Box::new(err)),
        _ => backend(err),
    }
}

/// Whether S3's error `code` says the request may succeed if sent again.
fn passing(code: Option<&str>) -> bool {
    matches!(code, Some("RequestTimeout" | "SlowDown" | "Throttling" | "InternalError"))
}

/// S3's most keys in one `DeleteObjects` call.
const DELETE_BATCH: usize = 1000;

/// The size of each read of a part streamed from disk: 20 to a 5 MiB part, where the SDK's
/// default (64 KiB) makes 80, while holding a quarter of a MiB per part in flight.
const PART_READ_BYTES: usize = 256 << 10;

/// `DeleteObjects` answered that it could not delete a key, for this reason.
#[derive(Debug, thiserror::Error)]
#[error("S3 did not delete an object: {code}")]
struct NotDeleted {
    code: String,
}

/// An S3 answer lacked a field it always carries.
#[derive(Debug, thiserror::Error)]
#[error("S3 answered without {0}")]
struct MissingField(&'static str);

/// The S3 endpoint the SDK is pointed at instead of AWS's: `AWS_ENDPOINT_URL_S3`, which the
/// SDK prefers for S3, else `AWS_ENDPOINT_URL`.
pub fn endpoint_override() -> Option<String> {
    let named = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    named("AWS_ENDPOINT_URL_S3").or_else(|| named("AWS_ENDPOINT_URL"))
}

impl S3Blobs {
    /// An S3 client for `config`; path-style addressing when an endpoint override is set
    /// (moto and LocalStack serve buckets by path, not by virtual host).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_builder(aws_sdk_s3::config::Builder::from(config))
    }

    /// As [`S3Blobs::new`], with the given configuration (other credentials, another region).
    pub fn from_builder(mut builder: aws_sdk_s3::config::Builder) -> Self {
        if endpoint_override().is_some() {
            builder = builder.force_path_style(true);
        }
        Self { client: Client::from_conf(builder.build()) }
    }

    /// The S3 client, for what [`Blobs`] does not cover (presigning).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl Blobs for S3Blobs {
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: bytes::Bytes,
        content_type: &str,
        when: IfStored,
    ) -> Result<String, StoreError> {
        let mut put = self.client.put_object().bucket(bucket).key(key).content_type(content_type);
        if let IfStored::Matches(etag) = when {
            put = put.if_match(etag);
        }
        // Bodies are checked by the CRC32 checksum the SDK adds (a signed header) rather than
        // by a SHA-256 of every byte in the signature, which was the uploads' largest CPU cost.
        match put.body(ByteStream::from(body)).customize().disable_payload_signing().send().await {
            Ok(out) => out.e_tag.ok_or_else(|| backend(MissingField("an ETag"))),
            // A 412 (another writer replaced the object) is a Conflict.
            Err(err) => Err(s3_error(err)),
        }
    }

    async fn start_multipart(&self, bucket: &str, key: &str, content_type: &str) -> Result<String, StoreError> {
        let out = self.client.create_multipart_upload().bucket(bucket).key(key).content_type(content_type).send().await;
        out.map_err(s3_error)?.upload_id.ok_or_else(|| backend(MissingField("an upload id")))
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        part: FilePart<'_>,
    ) -> Result<String, StoreError> {
        // Read from disk as it is sent: a 5 MiB part per recording need not sit in memory.
        // In reads of PART_READ_BYTES: each is a trip to the blocking pool (and, over plain
        // HTTP, a signed chunk).
        let body = ByteStream::read_from()
            .path(part.path)
            .offset(part.offset)
            .length(Length::Exact(part.length))
            .buffer_size(PART_READ_BYTES)
            .build()
            .await
            .map_err(backend)?;
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(body)
            // As for `put`: the CRC32 checksum covers the part.
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(s3_error)?;
        out.e_tag.ok_or_else(|| backend(MissingField("an ETag")))
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), StoreError> {
        let parts = etags
            .iter()
            .zip(1..)
            .map(|(etag, number)| CompletedPart::builder().e_tag(etag).part_number(number).build())
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Object>, StoreError> {
        let out = match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(err) => return Err(s3_error(err)),
        };
        let etag = out.e_tag.clone().ok_or_else(|| backend(MissingField("an ETag")))?;
        let body = out.body.collect().await.map_err(backend)?.into_bytes().to_vec();
        Ok(Some(Object { body, etag }))
    }

    async fn get_capped(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Capped, StoreError> {
        let mut out = match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(Capped::Missing),
            Err(err) => return Err(s3_error(err)),
        };
        // Dropping the body mid-way closes its connection: nothing past the cap is read.
        if out.content_length.and_then(|n| u64::try_from(n).ok()).is_some_and(|n| n > max_bytes) {
            return Ok(Capped::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = out.body.next().await {
            let chunk = chunk.map_err(backend)?;
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Ok(Capped::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Capped::Read(body))
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let mut pages = self.client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        let mut listed = Vec::new();
        while let Some(page) = pages.next().await {
            for object in page.map_err(s3_error)?.contents.unwrap_or_default() {
                let size = object.size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                listed.extend(object.key.map(|key| (key, size)));
            }
        }
        Ok(listed)
    }

    /// One `DeleteObjects` call per [`DELETE_BATCH`] keys; a key S3 could not delete fails
    /// the call as [`s3_error`] would have failed its own `DeleteObject`.
    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<(), StoreError> {
        for chunk in keys.chunks(DELETE_BATCH) {
            let objects = chunk.iter().map(|key| ObjectIdentifier::builder().key(key).build());
            let objects = objects.collect::<Result<Vec<_>, _>>().map_err(backend)?;
            let delete = Delete::builder().set_objects(Some(objects)).quiet(true).build().map_err(backend)?;
            let out = self.client.delete_objects().bucket(bucket).delete(delete).send().await.map_err(s3_error)?;
            if let Some(refused) = out.errors().first() {
                let failed = NotDeleted { code: refused.code().unwrap_or_default().to_owned() };
                return Err(match failed.code.as_str() {
                    "AccessDenied" => StoreError::Rejected(Box::new(Forbidden(Box::new(failed)))),
                    code if passing(Some(code)) => backend(failed),
                    _ => StoreError::Rejected(Box::new(failed)),
                });
            }
        }
        Ok(())
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    async fn size(&self, bucket: &str, key: &str) -> Result<Option<u64>, StoreError> {
        match self.client.head_object().bucket(bucket).key(key).send().await {
            Ok(out) => Ok(out.content_length.and_then(|n| u64::try_from(n).ok())),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(s3_error(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::put_object::PutObjectError;

    use super::*;

    fn failure(status: u16, code: &str) -> StoreError {
        let error = PutObjectError::generic(ErrorMetadata::builder().code(code).build());
        s3_error(SdkError::service_error(error, HttpResponse::new(status.try_into().unwrap(), "".into())))
    }

    #[test]
    fn refusals_for_good_are_not_retried_and_passing_failures_are() {
        assert!(matches!(failure(412, "PreconditionFailed"), StoreError::Conflict));
        assert!(matches!(failure(404, "NoSuchBucket"), StoreError::Rejected(_)));
        assert!(matches!(failure(404, "NoSuchUpload"), StoreError::Rejected(_)));
        assert!(matches!(failure(403, "AccessDenied"), StoreError::Rejected(e) if e.is::<Forbidden>()));
        assert!(matches!(failure(301, "PermanentRedirect"), StoreError::Rejected(_)));
        assert!(matches!(failure(400, "RequestTimeout"), StoreError::Backend(_)));
        assert!(matches!(failure(429, "TooManyRequests"), StoreError::Backend(_)));
        assert!(matches!(failure(503, "SlowDown"), StoreError::Backend(_)));
    }
}
