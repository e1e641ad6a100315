//! [`S3ObjectStore`]: one bucket as an [`ObjectStore`], plus presigned PUT and GET URLs.

use super::backend_error;
use crate::keys::validate_key;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use imgpipe_core::ports::{BackendError, ObjectInfo, ObjectMeta, ObjectStore, StoreError};
use std::time::Duration;

/// The header of a conditional PUT that only creates (`If-None-Match: *`).
pub const IF_NONE_MATCH: &str = "if-none-match";

/// One S3 bucket. Keys follow the same rules as every backend ([`validate_key`]).
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
}

impl S3ObjectStore {
    /// The store over `bucket`. With an endpoint override (an emulator), requests use path-style
    /// addressing: `http://127.0.0.1:port/bucket/key` instead of `bucket.127.0.0.1`.
    pub fn new(config: &SdkConfig, bucket: impl Into<String>) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some()).build();
        Self::from_client(Client::from_conf(s3), bucket)
    }

    /// The store over `bucket` through a client configured by the caller.
    pub fn from_client(client: Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A URL that accepts one `PUT` of `content_type` bytes at `key` until `ttl` passes. The
    /// content type and length are signed: S3 refuses a PUT that declares others. So is
    /// `If-None-Match: *` (S3 conditional writes): the PUT must send it, and S3 refuses it with
    /// 412 once an object exists at `key`, so a URL cannot replace the bytes it delivered.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> Result<String, BackendError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .if_none_match("*")
            .presigned(presigning(ttl)?)
            .await
            .map_err(|e| backend_error(format!("presigning a PUT of {key}"), e))?;
        Ok(request.uri().to_owned())
    }

    /// A URL that serves `key` until `ttl` passes.
    pub async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, BackendError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(ttl)?)
            .await
            .map_err(|e| backend_error(format!("presigning a GET of {key}"), e))?;
        Ok(request.uri().to_owned())
    }
}

fn presigning(ttl: Duration) -> Result<PresigningConfig, BackendError> {
    PresigningConfig::expires_in(ttl).map_err(|e| BackendError::permanent("invalid presigned URL lifetime", e))
}

/// S3 quotes etags; the ports do not.
fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_owned()
}

/// Whether a failed read means the object is not there. Without `s3:ListBucket` (the functions
/// do not get it: least privilege) S3 answers a missing key with 403, not 404.
fn is_missing<E: ProvideErrorMetadata>(error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status == 404 || (status == 403 && service.err().code() == Some("AccessDenied"))
        }
        _ => false,
    }
}

fn meta_of(content_type: Option<&str>, metadata: Option<&std::collections::HashMap<String, String>>) -> ObjectMeta {
    ObjectMeta {
        content_type: content_type.unwrap_or("binary/octet-stream").to_owned(),
        metadata: metadata.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put(&self, key: &str, bytes: Bytes, meta: &ObjectMeta) -> Result<ObjectInfo, StoreError> {
        validate_key(key)?;
        let size = bytes.len() as u64;
        let output = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(&meta.content_type)
            .set_metadata(Some(meta.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| backend_error(format!("putting {key}"), e))?;
        Ok(ObjectInfo { key: key.to_owned(), size, etag: unquote(output.e_tag()), meta: meta.clone() })
    }

    async fn get(&self, key: &str) -> Result<(Bytes, ObjectInfo), StoreError> {
        validate_key(key)?;
        let output = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(e) if is_missing(&e) => return Err(StoreError::NotFound { key: key.to_owned() }),
            Err(e) => return Err(backend_error(format!("getting {key}"), e).into()),
        };
        let info = ObjectInfo {
            key: key.to_owned(),
            size: 0,
            etag: unquote(output.e_tag()),
            meta: meta_of(output.content_type(), output.metadata()),
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| BackendError::retryable(format!("reading the body of {key}"), e))?
            .into_bytes();
        Ok((bytes.clone(), ObjectInfo { size: bytes.len() as u64, ..info }))
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        validate_key(key)?;
        let output = match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(e) if is_missing(&e) => return Err(StoreError::NotFound { key: key.to_owned() }),
            Err(e) => return Err(backend_error(format!("describing {key}"), e).into()),
        };
        Ok(ObjectInfo {
            key: key.to_owned(),
            size: output.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            etag: unquote(output.e_tag()),
            meta: meta_of(output.content_type(), output.metadata()),
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| backend_error(format!("deleting {key}"), e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| backend_error(format!("listing {prefix}"), e))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        keys.sort_unstable();
        Ok(keys)
    }
}
