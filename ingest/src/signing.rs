//! Upload and download URLs: presigned S3 URLs on AWS, HMAC-signed URLs to this API locally.
//!
//! A local upload URL is `{base}/v1/uploads/{id}?expires=UNIX&size=N&type=ENC&sig=HEX`, where
//! `sig` is HMAC-SHA256 over the id, the object key, the size, the content type and the expiry.
//! The signature is the credential of `PUT /v1/uploads/{id}`: it binds the upload to one slot,
//! one length and one content type, until it expires, as an S3 presigned PUT does.

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use imgpipe_core::event::form_encode;
use imgpipe_core::seams::ImageId;
use serde::Deserialize;
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Presigning failed (e.g. the AWS SDK could not load credentials).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UrlError {
    /// What failed.
    pub message: String,
    /// The signer's own error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Why a signed upload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature does not match the parameters (tampered, or not issued by this signer).
    #[error("bad signature")]
    Bad,
    /// The signature matches but its expiry has passed.
    #[error("expired")]
    Expired,
}

/// The query of a signed local upload URL, as the client sends it back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UploadGrant {
    /// Unix seconds after which the URL is refused.
    pub expires: u64,
    /// The exact number of bytes the upload must have.
    pub size: u64,
    /// The exact `Content-Type` the upload must declare.
    #[serde(rename = "type")]
    pub content_type: String,
    /// Hex HMAC-SHA256 of the above, the id and the key.
    pub sig: String,
}

/// Makes the URLs clients upload to and download from.
#[async_trait]
pub trait UploadUrls: Send + Sync + 'static {
    /// A URL that accepts one `PUT` of exactly `size` bytes of `content_type` for image `id`,
    /// stored at `key`, for `ttl`.
    async fn presign_put(
        &self,
        id: ImageId,
        key: &str,
        size: u64,
        content_type: &str,
        ttl: Duration,
    ) -> Result<String, UrlError>;

    /// Headers besides `content-type` that are signed into every upload URL, so a client must
    /// send them with its `PUT` (returned with each URL).
    fn put_headers(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// A URL to redirect a rendition download to, or `None` to have the API stream the bytes.
    async fn download(&self, key: &str) -> Result<Option<String>, UrlError>;

    /// Checks a `PUT /v1/uploads/{id}` against the slot's key. Only signers whose URLs point at
    /// this API accept any; the default (S3 URLs point at S3) refuses all.
    fn verify_put(&self, id: ImageId, key: &str, grant: &UploadGrant, now_secs: u64) -> Result<(), SignatureError> {
        let _ = (id, key, grant, now_secs);
        Err(SignatureError::Bad)
    }
}

/// Local-mode URLs: uploads are HMAC-signed URLs to this API, downloads are streamed by it.
#[derive(Clone)]
pub struct LocalUploadUrls {
    /// Scheme, host and port clients reach this API at, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// The HMAC key; keep it secret, and random per deployment (restarting with a new one
    /// invalidates outstanding URLs, which is safe).
    pub secret: [u8; 32],
}

impl std::fmt::Debug for LocalUploadUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalUploadUrls").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl LocalUploadUrls {
    /// A signer for URLs under `base_url` (a trailing `/` is ignored).
    pub fn new(base_url: impl Into<String>, secret: [u8; 32]) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self { base_url, secret }
    }

    /// The URL for `PUT`ting `size` bytes of `content_type` to slot `id` (at `key`) until
    /// `expires` (Unix seconds).
    pub fn upload_url(&self, id: ImageId, key: &str, size: u64, content_type: &str, expires: u64) -> String {
        let sig = hex::encode(self.mac(id, key, size, content_type, expires).finalize().into_bytes());
        format!(
            "{}/v1/uploads/{id}?expires={expires}&size={size}&type={}&sig={sig}",
            self.base_url,
            form_encode(content_type)
        )
    }

    /// HMAC over the fields, each length-prefixed so no two field lists sign the same bytes.
    fn mac(&self, id: ImageId, key: &str, size: u64, content_type: &str, expires: u64) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail for 32 bytes.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(b"imgpipe-upload-v1");
        for field in [id.to_string().as_bytes(), key.as_bytes(), content_type.as_bytes()] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac.update(&size.to_be_bytes());
        mac.update(&expires.to_be_bytes());
        mac
    }
}

#[async_trait]
impl UploadUrls for LocalUploadUrls {
    async fn presign_put(
        &self,
        id: ImageId,
        key: &str,
        size: u64,
        content_type: &str,
        ttl: Duration,
    ) -> Result<String, UrlError> {
        Ok(self.upload_url(id, key, size, content_type, unix_now().saturating_add(ttl.as_secs())))
    }

    async fn download(&self, _key: &str) -> Result<Option<String>, UrlError> {
        Ok(None)
    }

    fn verify_put(&self, id: ImageId, key: &str, grant: &UploadGrant, now_secs: u64) -> Result<(), SignatureError> {
        let sig = hex::decode(&grant.sig).map_err(|_| SignatureError::Bad)?;
        // `verify_slice` compares in constant time.
        self.mac(id, key, grant.size, &grant.content_type, grant.expires)
            .verify_slice(&sig)
            .map_err(|_| SignatureError::Bad)?;
        if now_secs > grant.expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant_of(url: &str) -> UploadGrant {
        let query = url.split_once('?').unwrap().1;
        let mut grant = UploadGrant { expires: 0, size: 0, content_type: String::new(), sig: String::new() };
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap();
            match name {
                "expires" => grant.expires = value.parse().unwrap(),
                "size" => grant.size = value.parse().unwrap(),
                "type" => grant.content_type = imgpipe_core::event::form_decode(value),
                "sig" => grant.sig = value.into(),
                other => panic!("unexpected parameter {other}"),
            }
        }
        grant
    }

    #[test]
    fn urls_are_bound_to_id_key_size_type_and_expiry() {
        let urls = LocalUploadUrls::new("http://h:1/", [7; 32]);
        let id = ImageId::generate();
        let key = id.original_key("png");
        let url = urls.upload_url(id, &key, 42, "image/png; x=a b", 1000);
        assert!(url.starts_with(&format!("http://h:1/v1/uploads/{id}?expires=1000&size=42&type=image%2Fpng")), "{url}");
        let grant = grant_of(&url);
        assert_eq!(grant.content_type, "image/png; x=a b");
        assert_eq!(urls.verify_put(id, &key, &grant, 1000), Ok(()));
        assert_eq!(urls.verify_put(id, &key, &grant, 1001), Err(SignatureError::Expired));

        let other = ImageId::generate();
        assert_eq!(urls.verify_put(other, &key, &grant, 0), Err(SignatureError::Bad));
        assert_eq!(urls.verify_put(id, "originals/x.png", &grant, 0), Err(SignatureError::Bad));
        for tamper in [
            UploadGrant { size: 43, ..grant.clone() },
            UploadGrant { expires: 5000, ..grant.clone() },
            UploadGrant { content_type: "image/jpeg".into(), ..grant.clone() },
            UploadGrant { sig: "zz".into(), ..grant.clone() },
            UploadGrant { sig: grant.sig[..62].into(), ..grant.clone() },
        ] {
            assert_eq!(urls.verify_put(id, &key, &tamper, 0), Err(SignatureError::Bad), "{tamper:?}");
        }
        let stranger = LocalUploadUrls::new("http://h:1", [8; 32]);
        assert_eq!(stranger.verify_put(id, &key, &grant, 0), Err(SignatureError::Bad));
    }
}
