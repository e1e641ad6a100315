//! `/v1/uploads`: bulk presigned uploads, and the local target of their URLs.

use crate::body::{self, ReadError};
use crate::error::{ApiError, ErrorBody};
use crate::intake;
use crate::openapi::Binary;
use crate::signing::{SignatureError, UploadGrant, unix_now};
use crate::state::{AppState, IngestConfig};
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use imgpipe_core::InputFormat;
use imgpipe_core::preset::DEFAULT_PRESET;
use imgpipe_core::record::{MetadataRecord, Source, now_ms};
use imgpipe_core::seams::{ImageId, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// JSON bytes allowed per file entry of a bulk request (filename, content type, framing).
const BULK_BYTES_PER_FILE: u64 = 1024;
/// Longest filename and content type accepted.
const MAX_FILENAME: usize = 512;
const MAX_CONTENT_TYPE: usize = 255;

/// The body of `POST /v1/uploads`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRequest {
    /// The preset of every file (`default` if absent).
    preset: Option<String>,
    /// The files, at least one.
    #[schema(min_items = 1)]
    files: Vec<BulkFile>,
}

/// One file a client is about to upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkFile {
    filename: String,
    /// An image type this deployment takes (image/jpeg, image/png, image/gif, image/webp by default).
    content_type: String,
    #[schema(minimum = 1)]
    bytes: u64,
}

/// The answer to `POST /v1/uploads`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Presigned {
    /// One per file, in the request's order.
    uploads: Vec<Upload>,
}

/// How to upload one file.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Upload {
    id: ImageId,
    filename: String,
    #[schema(inline)]
    method: UploadMethod,
    url: String,
    /// Headers the upload must send, exactly.
    headers: BTreeMap<String, String>,
    /// Unix seconds.
    expires_at: u64,
}

/// The method of a presigned upload.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum UploadMethod {
    /// The body is the file.
    Put,
}

/// The answer to a signed `PUT`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Stored {
    id: ImageId,
    status: Status,
}

/// What a record keeps of a client's file name (presigned or multipart): the name as given, none
/// when empty; one over [`MAX_FILENAME`] bytes is refused.
pub(crate) fn recorded_filename(name: &str) -> Result<Option<String>, ApiError> {
    if name.len() > MAX_FILENAME {
        return Err(ApiError::InvalidBody(format!("a filename is longer than {MAX_FILENAME} bytes")));
    }
    Ok(Some(name.to_owned()).filter(|name| !name.is_empty()))
}

/// The format `file` (entry `index` of the request) declares, if this deployment takes it: its
/// key's extension is fixed when the URL is signed, and the processor sniffs the bytes anyway.
fn declared_format(config: &IngestConfig, index: usize, file: &BulkFile) -> Result<InputFormat, ApiError> {
    let field = || format!("files[{index}].content_type");
    let content_type = &file.content_type;
    if content_type.is_empty() || content_type.len() > MAX_CONTENT_TYPE || HeaderValue::from_str(content_type).is_err()
    {
        return Err(ApiError::InvalidBody(format!("{}: invalid content type {content_type:?}", field())));
    }
    InputFormat::from_content_type(content_type).filter(|f| config.formats.contains(f)).ok_or_else(|| {
        ApiError::UnsupportedContentType {
            field: field(),
            content_type: content_type.clone(),
            accepted: config.formats.iter().map(|f| f.content_type()).collect::<Vec<_>>().join(", "),
        }
    })
}

/// `POST /v1/uploads`: reserves an AWAITING_UPLOAD slot per file and returns a presigned `PUT`
/// for each.
#[utoipa::path(
    post,
    path = "/v1/uploads",
    operation_id = "presign_uploads",
    summary = "Reserve upload slots and get one presigned PUT per file",
    request_body = inline(BulkRequest),
    responses(
        (status = 200, description = "One upload per file, in order", body = inline(Presigned)),
        (status = 400, description = "`unknown_preset`, `empty_upload`, `too_many_files`, `invalid_body`, `unsupported_content_type` (the message names the field, e.g. `files[3].content_type`).", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a file over the upload limit, or an oversized request.", body = ErrorBody),
    ),
)]
#[tracing::instrument(skip_all, fields(files))]
pub(crate) async fn presign(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Presigned>, ApiError> {
    let config = &state.config;
    let body_limit = (config.max_bulk_files as u64).saturating_mul(BULK_BYTES_PER_FILE).saturating_add(4096);
    let bytes = body::read_limited(&headers, body, body_limit).await.map_err(|e| match e {
        ReadError::TooLarge(limit) => ApiError::PayloadTooLarge { limit },
        ReadError::Read(e) => ApiError::InvalidBody(e.to_string()),
    })?;
    let request: BulkRequest = serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidBody(e.to_string()))?;
    let preset = request.preset.unwrap_or_else(|| DEFAULT_PRESET.to_owned());
    if state.presets.current().get(&preset).is_none() {
        return Err(ApiError::UnknownPreset(preset));
    }
    if request.files.is_empty() {
        return Err(ApiError::EmptyUpload);
    }
    if request.files.len() > config.max_bulk_files {
        return Err(ApiError::TooManyFiles { count: request.files.len(), max: config.max_bulk_files });
    }
    // Check every file before reserving any, so a refused request reserves nothing.
    let mut formats = Vec::with_capacity(request.files.len());
    for (index, file) in request.files.iter().enumerate() {
        if file.bytes == 0 {
            return Err(ApiError::EmptyUpload);
        }
        if file.bytes > config.max_upload_bytes {
            return Err(ApiError::PayloadTooLarge { limit: config.max_upload_bytes });
        }
        recorded_filename(&file.filename)?;
        formats.push(declared_format(config, index, file)?);
    }
    tracing::Span::current().record("files", request.files.len());
    let ttl = config.upload_url_ttl;
    let expires_at = unix_now().saturating_add(ttl.as_secs());
    let mut slots = Vec::with_capacity(request.files.len());
    let mut uploads = Vec::with_capacity(request.files.len());
    for (file, format) in request.files.into_iter().zip(formats) {
        let id = ImageId::generate();
        let key = id.original_key(format.extension());
        // Presigning is a local computation (a signature), not a call: the slots are written
        // below, all at once.
        let url = state
            .urls
            .presign_put(id, &key, file.bytes, &file.content_type, ttl)
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let source = Source { key, bytes: file.bytes, etag: String::new(), content_type: file.content_type.clone() };
        let mut slot = MetadataRecord::pending(id, source, preset.clone(), now_ms());
        slot.filename = recorded_filename(&file.filename)?;
        slot.status = Status::AwaitingUpload;
        slot.expires_at = Some(expires_at);
        slots.push(slot);
        let mut headers = BTreeMap::from([("content-type".to_owned(), file.content_type)]);
        headers.extend(state.urls.put_headers().iter().map(|&(name, value)| (name.to_owned(), value.to_owned())));
        uploads.push(Upload { id, filename: file.filename, method: UploadMethod::Put, url, headers, expires_at });
    }
    state.metadata.reserve(&slots).await?;
    tracing::debug!(slots = slots.len(), "upload slots reserved");
    Ok(Json(Presigned { uploads }))
}

/// `PUT /v1/uploads/{id}`: the bytes of a reserved slot, through a signed URL. The signature is
/// the credential: it binds the slot, the exact size and content type, until it expires.
#[utoipa::path(
    put,
    path = "/v1/uploads/{id}",
    operation_id = "put_upload",
    summary = "Upload the bytes of a reserved slot (local mode's presigned URL; the signature is the credential)",
    params(
        ("id" = String, Path, description = "The image's ULID."),
        ("expires" = u64, Query),
        ("size" = u64, Query),
        ("type" = String, Query),
        ("sig" = String, Query),
    ),
    request_body(content = Binary, content_type = "*/*"),
    responses(
        (status = 200, description = "Stored and queued", body = inline(Stored)),
        (status = 400, description = "`invalid_id`, `content_type_mismatch`, `size_mismatch`.", body = ErrorBody),
        (status = 403, description = "`bad_signature`, `url_expired`.", body = ErrorBody),
        (status = 409, description = "`already_uploaded`", body = ErrorBody),
    ),
)]
#[tracing::instrument(skip_all, fields(image_id = %id))]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    grant: Result<Query<UploadGrant>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Stored>, ApiError> {
    let id: ImageId = id.parse().map_err(ApiError::InvalidId)?;
    // Without the signed parameters this is not a signed URL at all.
    let Query(grant) = grant.map_err(|_| ApiError::BadSignature)?;
    // An unknown slot cannot be told apart from a bad signature: no probing for ids.
    let slot = state.metadata.get(id).await?.ok_or(ApiError::BadSignature)?;
    state.urls.verify_put(id, &slot.source.key, &grant, unix_now()).map_err(|e| match e {
        SignatureError::Bad => ApiError::BadSignature,
        SignatureError::Expired => ApiError::UrlExpired,
    })?;
    if slot.status != Status::AwaitingUpload {
        return Err(ApiError::AlreadyUploaded);
    }
    let declared = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if declared != grant.content_type {
        return Err(ApiError::ContentTypeMismatch { expected: grant.content_type, got: declared.to_owned() });
    }
    let size_mismatch = ApiError::SizeMismatch { expected: grant.size };
    if body::content_length(&headers).is_some_and(|n| n != grant.size) {
        return Err(size_mismatch);
    }
    let bytes = match body::read_limited(&headers, body, grant.size).await {
        Ok(bytes) if bytes.len() as u64 == grant.size => bytes,
        Ok(_) | Err(ReadError::TooLarge(_)) => return Err(size_mismatch),
        Err(ReadError::Read(e)) => return Err(ApiError::InvalidBody(e.to_string())),
    };
    intake::accept_reserved(&state, slot, bytes).await?;
    Ok(Json(Stored { id, status: Status::Pending }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content_type: &str) -> BulkFile {
        BulkFile { filename: "a".into(), content_type: content_type.into(), bytes: 1 }
    }

    #[test]
    fn only_the_deployment_s_image_types_are_declared() {
        let config = IngestConfig::default();
        assert_eq!(declared_format(&config, 0, &file("image/jpeg")).unwrap(), InputFormat::Jpeg);
        assert_eq!(declared_format(&config, 0, &file("Image/PNG; charset=x")).unwrap(), InputFormat::Png);
        for refused in ["application/pdf", "image/tiff", "application/x-www-form-urlencoded"] {
            let error = declared_format(&config, 3, &file(refused)).unwrap_err();
            assert!(error.to_string().starts_with("files[3].content_type: "), "{error}");
            assert_eq!(error.status_and_code().1, "unsupported_content_type");
        }
        let error = declared_format(&config, 1, &file("")).unwrap_err();
        assert!(error.to_string().contains("files[1].content_type"), "{error}");
        let tiff = IngestConfig { formats: vec![InputFormat::Tiff], ..IngestConfig::default() };
        assert_eq!(declared_format(&tiff, 0, &file("image/tiff")).unwrap(), InputFormat::Tiff);
    }
}
