//! Uploads finished files (Parquet history) to S3: one `PutObject` below the
//! multipart threshold, a multipart upload above it (parts read straight from
//! the file, aborted if any step fails so no orphaned parts are billed).

use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
};

use crate::error::{classify, AwsError};

/// Default size from which a file goes up in parts.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// S3's minimum part size (every part but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's maximum number of parts.
pub const MAX_PARTS: u64 = 10_000;

/// Uploads files under one bucket and key prefix.
#[derive(Debug, Clone)]
pub struct S3Uploader {
    client: aws_sdk_s3::Client,
    bucket: Arc<str>,
    prefix: Arc<str>,
    multipart_threshold: u64,
    part_size: u64,
}

impl S3Uploader {
    /// `part_size` is raised to [`MIN_PART_SIZE`] if smaller; the threshold
    /// is at least one part.
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        multipart_threshold: u64,
        part_size: u64,
    ) -> Self {
        let part_size = part_size.max(MIN_PART_SIZE);
        Self {
            client,
            bucket: Arc::from(bucket.into()),
            prefix: Arc::from(prefix.into()),
            multipart_threshold: multipart_threshold.max(MIN_PART_SIZE),
            part_size,
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key for `key`: the prefix, a `/` if needed, then `key`.
    pub fn object_key(&self, key: &str) -> String {
        let key = key.trim_start_matches('/');
        if self.prefix.is_empty() {
            key.to_string()
        } else if self.prefix.ends_with('/') {
            format!("{}{key}", self.prefix)
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// Create the bucket if it does not exist (in the client's region).
    pub async fn ensure_bucket(&self) -> Result<(), AwsError> {
        match self.client.head_bucket().bucket(&*self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
            Err(e) => return Err(classify(&e)),
        }
        let mut req = self.client.create_bucket().bucket(&*self.bucket);
        let region = self
            .client
            .config()
            .region()
            .map(|r| r.as_ref().to_string());
        if let Some(region) = region.filter(|r| r != "us-east-1") {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(&e)),
        }
    }

    /// Upload the file at `path` to `prefix/key`.
    pub async fn upload_file(&self, path: &Path, key: &str) -> Result<(), AwsError> {
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|e| io_error(path, &e))?
            .len();
        let key = self.object_key(key);
        if len < self.multipart_threshold {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| AwsError::Retryable(format!("{}: {e}", path.display())))?;
            self.client
                .put_object()
                .bucket(&*self.bucket)
                .key(&key)
                .content_length(i64::try_from(len).unwrap_or(i64::MAX))
                .body(body)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            return Ok(());
        }
        self.multipart(path, &key, len).await
    }

    async fn multipart(&self, path: &Path, key: &str, len: u64) -> Result<(), AwsError> {
        // Keep within S3's part count limit for very large files.
        let part_size = self.part_size.max(len.div_ceil(MAX_PARTS));
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(AwsError::Retryable(
                "CreateMultipartUpload gave no UploadId".into(),
            ));
        };
        match self.send_parts(path, key, len, part_size, &upload_id).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let abort = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&*self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                if let Err(abort_err) = abort {
                    tracing::warn!(key, upload_id, error = %classify(&abort_err), "abort of multipart upload failed");
                }
                Err(e)
            }
        }
    }

    async fn send_parts(
        &self,
        path: &Path,
        key: &str,
        len: u64,
        part_size: u64,
        upload_id: &str,
    ) -> Result<(), AwsError> {
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < len {
            let this_len = part_size.min(len - offset);
            let body = ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(this_len))
                .build()
                .await
                .map_err(|e| AwsError::Retryable(format!("{}: {e}", path.display())))?;
            let out = self
                .client
                .upload_part()
                .bucket(&*self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(i64::try_from(this_len).unwrap_or(i64::MAX))
                .body(body)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .build(),
            );
            offset += this_len;
            number += 1;
        }
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&*self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        match completed {
            Ok(_) => Ok(()),
            // HTTP 200 the SDK could not read as a result: moto, for one,
            // names the root element `CompleteMultipartUploadResponse`. The
            // object is there if HEAD says so, with the right size.
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(200) => {
                let head = self
                    .client
                    .head_object()
                    .bucket(&*self.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                if head.content_length().and_then(|l| u64::try_from(l).ok()) == Some(len) {
                    Ok(())
                } else {
                    Err(classify(&e))
                }
            }
            Err(e) => Err(classify(&e)),
        }
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> AwsError {
    let msg = format!("{}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            AwsError::Permanent(msg)
        }
        _ => AwsError::Retryable(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .build();
        let c = aws_sdk_s3::Client::from_conf(conf);
        let u = S3Uploader::new(c.clone(), "b", "raw", 0, 0);
        assert_eq!(
            u.object_key("device_type=t/date=2026-01-01/x.parquet"),
            "raw/device_type=t/date=2026-01-01/x.parquet"
        );
        assert_eq!(u.part_size, MIN_PART_SIZE);
        assert_eq!(
            S3Uploader::new(c.clone(), "b", "raw/", 0, 0).object_key("/k"),
            "raw/k"
        );
        assert_eq!(S3Uploader::new(c, "b", "", 0, 0).object_key("k"), "k");
    }
}
