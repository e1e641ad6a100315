//! The v1 API as a client sees it: upload, presign, put, list, health. One shared
//! [`reqwest::Client`] (its connection pool is what keeps a run from paying a handshake per
//! upload).

use crate::inputs::Input;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// A request that did not get the answer it wanted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The API answered with an error status (and its stable `code`, when it sent one).
    #[error("HTTP {status}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        /// The status code.
        status: u16,
        /// The error body's `code`.
        code: Option<String>,
    },
    /// No answer: connection refused or reset, or a timeout.
    #[error("{0}")]
    Transport(String),
    /// An answer that is not the JSON the API documents.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl CallError {
    /// A short stable label for counting refusals: `http_503_overloaded`, `timeout`, `connect`.
    pub fn label(&self) -> String {
        match self {
            CallError::Status { status, code: Some(code) } => format!("http_{status}_{code}"),
            CallError::Status { status, code: None } => format!("http_{status}"),
            CallError::Transport(what) => what.split(':').next().unwrap_or("transport").to_owned(),
            CallError::Decode(_) => "bad_response".to_owned(),
        }
    }

    fn from_reqwest(error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            "timeout"
        } else if error.is_connect() {
            "connect"
        } else if error.is_body() || error.is_decode() {
            "body"
        } else {
            "request"
        };
        // Keep the whole chain: reqwest's own message rarely says what failed underneath.
        let mut message = format!("{kind}: {error}");
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        CallError::Transport(message)
    }
}

/// A signed upload URL for one file.
#[derive(Debug, Clone, Deserialize)]
pub struct Grant {
    /// The image id the slot was reserved under.
    pub id: String,
    /// Where to `PUT` the bytes.
    pub url: String,
    /// Headers the `PUT` must carry as given: the content type it was signed for and, on S3,
    /// `If-None-Match: *` (a signed header: without it S3 refuses the request).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// One page of `GET /v1/images`.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// Records, newest first.
    pub images: Vec<Value>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Uploaded {
    images: Vec<UploadedImage>,
}

#[derive(Deserialize)]
struct UploadedImage {
    id: String,
}

#[derive(Deserialize)]
struct Grants {
    uploads: Vec<Grant>,
}

/// A client of one target.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
}

impl Api {
    /// A client of `base` (`http://host:port`), sending `api_key` to the API's keyed routes.
    pub fn new(base: &str, api_key: Option<&str>, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let auth = api_key
            .map(|key| {
                HeaderValue::from_str(&format!("Bearer {key}")).map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
            })
            .transpose()
            .map_err(|_| "the API key holds characters a header cannot carry".to_owned())?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), auth })
    }

    fn keyed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(auth) => request.header(AUTHORIZATION, auth.clone()),
            None => request,
        }
    }

    /// `POST /v1/images` with `input` as the raw body; the new image's id.
    pub async fn upload(&self, input: &Input, preset: Option<&str>) -> Result<String, CallError> {
        let mut request = self.http.post(format!("{}/v1/images", self.base));
        if let Some(preset) = preset {
            request = request.query(&[("preset", preset)]);
        }
        let request = self.keyed(request).header(CONTENT_TYPE, input.content_type).body(input.bytes.clone());
        let uploaded: Uploaded = json_of(request.send().await).await?;
        uploaded
            .images
            .into_iter()
            .next()
            .map(|i| i.id)
            .ok_or_else(|| CallError::Decode("no image in the answer".into()))
    }

    /// `POST /v1/uploads` for `files`: one grant per file, in order.
    pub async fn presign(&self, files: &[&Input], preset: Option<&str>) -> Result<Vec<Grant>, CallError> {
        let files: Vec<Value> = files
            .iter()
            .map(|f| json!({"filename": f.name, "content_type": f.content_type, "bytes": f.bytes.len()}))
            .collect();
        let mut body = json!({"files": files});
        if let Some(preset) = preset {
            body["preset"] = json!(preset);
        }
        let request = self.keyed(self.http.post(format!("{}/v1/uploads", self.base))).json(&body);
        let grants: Grants = json_of(request.send().await).await?;
        if grants.uploads.len() != files.len() {
            return Err(CallError::Decode(format!("{} grants for {} files", grants.uploads.len(), files.len())));
        }
        Ok(grants.uploads)
    }

    /// `PUT`s `input` to its signed URL (without the API key: the signature is the credential,
    /// and S3 refuses a request that carries both).
    pub async fn put(&self, grant: &Grant, input: &Input) -> Result<(), CallError> {
        let url = if grant.url.starts_with('/') { format!("{}{}", self.base, grant.url) } else { grant.url.clone() };
        let mut request = self.http.put(url).body(input.bytes.clone());
        if !grant.headers.keys().any(|name| name.eq_ignore_ascii_case(CONTENT_TYPE.as_str())) {
            request = request.header(CONTENT_TYPE, input.content_type);
        }
        for (name, value) in &grant.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.map_err(CallError::from_reqwest)?;
        checked(response).await.map(drop)
    }

    /// One page of records with `status`, newest first.
    pub async fn list(&self, status: &str, cursor: Option<&str>, limit: usize) -> Result<Page, CallError> {
        let limit = limit.to_string();
        let mut query = vec![("status", status), ("limit", limit.as_str())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        let request = self.keyed(self.http.get(format!("{}/v1/images", self.base))).query(&query);
        json_of(request.send().await).await
    }

    /// `GET /v1/images/{id}`: the image's record.
    pub async fn record(&self, id: &str) -> Result<Value, CallError> {
        let request = self.keyed(self.http.get(format!("{}/v1/images/{id}", self.base)));
        json_of(request.send().await).await
    }

    /// `GET /v1/images/{id}/renditions/{name}`: the rendition's bytes (a redirect, as the
    /// deployed API answers with a presigned URL, is followed).
    pub async fn rendition(&self, id: &str, name: &str) -> Result<bytes::Bytes, CallError> {
        let request = self.keyed(self.http.get(format!("{}/v1/images/{id}/renditions/{name}", self.base)));
        let response = checked(request.send().await.map_err(CallError::from_reqwest)?).await?;
        response.bytes().await.map_err(CallError::from_reqwest)
    }

    /// `GET /healthz`: `Ok(version)` when the target answers (with its version, if it tells),
    /// an error when it cannot be reached.
    pub async fn health(&self) -> Result<Option<String>, CallError> {
        let response = self.http.get(format!("{}/healthz", self.base)).send().await.map_err(CallError::from_reqwest)?;
        if !response.status().is_success() {
            // Some other server, or one without a health route: reachable, version unknown.
            return Ok(None);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok(body.get("version").and_then(Value::as_str).map(str::to_owned))
    }
}

async fn checked(response: reqwest::Response) -> Result<reqwest::Response, CallError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let code =
        response.json::<Value>().await.ok().and_then(|b| b.get("code").and_then(Value::as_str).map(str::to_owned));
    Err(CallError::Status { status: status.as_u16(), code })
}

async fn json_of<T: serde::de::DeserializeOwned>(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, CallError> {
    let response = checked(response.map_err(CallError::from_reqwest)?).await?;
    let bytes = response.bytes().await.map_err(CallError::from_reqwest)?;
    serde_json::from_slice(&bytes).map_err(|e| CallError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_have_short_stable_labels() {
        let status = CallError::Status { status: 413, code: Some("payload_too_large".into()) };
        assert_eq!(status.label(), "http_413_payload_too_large");
        assert_eq!(CallError::Status { status: 502, code: None }.label(), "http_502");
        assert_eq!(CallError::Transport("timeout: operation timed out".into()).label(), "timeout");
        assert_eq!(CallError::Decode("x".into()).label(), "bad_response");
    }
}
