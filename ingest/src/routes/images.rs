//! `/v1/images`: direct uploads (raw or multipart), a record, a page of records, a rendition.

use crate::body::{self, ReadError};
use crate::error::{ApiError, ErrorBody};
use crate::intake;
use crate::openapi::Binary;
use crate::routes::uploads::recorded_filename;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use imgpipe_core::preset::DEFAULT_PRESET;
use imgpipe_core::record::MetadataRecord;
use imgpipe_core::seams::{ImageId, Status};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Room for multipart framing (boundaries, part headers) on top of the file bytes.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Longest accepted preset name in a form field.
const MAX_PRESET_FIELD: u64 = 256;
/// Records per page unless the client asks otherwise, and the most it may ask for.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

/// `?preset=` of an upload.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    #[param(default = json!(DEFAULT_PRESET))]
    preset: Option<String>,
}

/// The multipart form of `POST /v1/images` (read part by part, never as a whole: for the document).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct UploadForm {
    /// The images, one part each, with a filename.
    file: Vec<Binary>,
    /// The preset, if not in the query.
    preset: Option<String>,
}

/// The answer to `POST /v1/images`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Accepted {
    /// One entry per file, in order.
    images: Vec<AcceptedImage>,
}

/// One stored and queued image.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AcceptedImage {
    id: ImageId,
    status: Status,
    /// Where its record is.
    url: String,
}

/// One uploaded file, read in full and within the limit. Its declared type is not kept: the
/// record says what the bytes are (`curl --data-binary` declares a form, whatever it sends).
struct File {
    bytes: Bytes,
    /// The part's filename (multipart only), as text.
    name: Option<String>,
}

/// `POST /v1/images`: stores each file as an original and answers 202 with the new ids.
#[utoipa::path(
    post,
    path = "/v1/images",
    operation_id = "upload_images",
    summary = "Upload one image (raw body) or several (multipart/form-data)",
    params(UploadQuery),
    request_body(content(
        (Binary = "application/octet-stream"),
        (Binary = "image/*"),
        (inline(UploadForm) = "multipart/form-data"),
    )),
    responses(
        (status = 202, description = "Accepted: stored and queued", body = Accepted),
        (status = 400, description = "`unknown_preset`, `empty_upload`, `too_many_files`, `invalid_body`, `invalid_query`.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over the upload limit; nothing was stored.", body = ErrorBody),
    ),
)]
#[tracing::instrument(skip_all, fields(files))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidQuery(e.body_text()))?;
    // Refuse a bad preset before reading a byte.
    let query_preset = query.preset.map(|name| known_preset(&state, name)).transpose()?;
    let multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    let (files, form_preset) =
        if multipart { read_multipart(&state, request).await? } else { (vec![read_raw(&state, request).await?], None) };
    let preset = match (query_preset, form_preset) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::InvalidBody(format!("preset {a:?} in the query and {b:?} in the form")));
        }
        (Some(name), _) => name,
        (None, Some(name)) => known_preset(&state, name)?,
        (None, None) => DEFAULT_PRESET.to_owned(),
    };
    if files.is_empty() || files.iter().any(|f| f.bytes.is_empty()) {
        return Err(ApiError::EmptyUpload);
    }
    tracing::Span::current().record("files", files.len());
    let mut images = Vec::with_capacity(files.len());
    for file in files {
        let id = ImageId::generate();
        intake::accept_new(&state, id, file.bytes, &preset, file.name).await?;
        images.push(AcceptedImage { id, status: Status::Pending, url: format!("/v1/images/{id}") });
    }
    Ok((StatusCode::ACCEPTED, Json(Accepted { images })).into_response())
}

fn known_preset(state: &AppState, name: String) -> Result<String, ApiError> {
    match state.presets.current().get(&name) {
        Some(_) => Ok(name),
        None => Err(ApiError::UnknownPreset(name)),
    }
}

async fn read_raw(state: &AppState, request: Request) -> Result<File, ApiError> {
    let limit = state.config.max_upload_bytes;
    let (parts, body) = request.into_parts();
    let bytes = body::read_limited(&parts.headers, body, limit).await.map_err(|e| match e {
        ReadError::TooLarge(limit) => ApiError::PayloadTooLarge { limit },
        ReadError::Read(e) => ApiError::InvalidBody(e.to_string()),
    })?;
    Ok(File { bytes, name: None })
}

/// Reads every part: files (parts with a filename) and an optional `preset` field. Nothing is
/// stored until all of it has been read, so a refused request leaves nothing behind; the file
/// bytes together are held to the upload limit.
async fn read_multipart(state: &AppState, request: Request) -> Result<(Vec<File>, Option<String>), ApiError> {
    let limit = state.config.max_upload_bytes;
    let body_limit = limit.saturating_add(MULTIPART_OVERHEAD);
    if body::content_length(request.headers()).is_some_and(|n| n > body_limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let (parts, body) = request.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, usize::try_from(body_limit).unwrap_or(usize::MAX)));
    let mut multipart = Multipart::from_request(Request::from_parts(parts, body), &())
        .await
        .map_err(|e| ApiError::InvalidBody(e.body_text()))?;
    let (mut files, mut preset, mut total) = (Vec::new(), None, 0u64);
    while let Some(field) = multipart.next_field().await.map_err(|e| multipart_error(e, limit))? {
        if let Some(name) = field.file_name() {
            let name = recorded_filename(name)?;
            if files.len() == state.config.max_bulk_files {
                return Err(ApiError::TooManyFiles { count: files.len() + 1, max: state.config.max_bulk_files });
            }
            let bytes = read_field(field, limit - total, limit).await?.ok_or(ApiError::PayloadTooLarge { limit })?;
            total += bytes.len() as u64;
            files.push(File { bytes, name });
        } else if field.name() == Some("preset") {
            let text = read_field(field, MAX_PRESET_FIELD, limit)
                .await?
                .ok_or_else(|| ApiError::InvalidBody("the preset field is too long".into()))?;
            let name = String::from_utf8(text.to_vec())
                .map_err(|_| ApiError::InvalidBody("the preset field is not UTF-8".into()))?;
            preset = Some(name.trim().to_owned());
        } else {
            let name = field.name().unwrap_or_default().to_owned();
            return Err(ApiError::InvalidBody(format!("unexpected form field {name:?} (expected files and `preset`)")));
        }
    }
    Ok((files, preset))
}

/// Reads one part; `None` once it has more than `room` bytes (the rest is not read).
/// `limit` is the upload limit, for errors of the request body as a whole.
async fn read_field(mut field: Field<'_>, room: u64, limit: u64) -> Result<Option<Bytes>, ApiError> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        if (buffer.len() + chunk.len()) as u64 > room {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Some(buffer.freeze()))
}

fn multipart_error(error: MultipartError, limit: u64) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::InvalidBody(error.body_text())
    }
}

fn parse_id(id: &str) -> Result<ImageId, ApiError> {
    id.parse().map_err(ApiError::InvalidId)
}

async fn record(state: &AppState, id: ImageId) -> Result<MetadataRecord, ApiError> {
    state.metadata.get(id).await?.ok_or_else(|| ApiError::NotFound(format!("no image {id}")))
}

/// `GET /v1/images/{id}`: the image's metadata record.
#[utoipa::path(
    get,
    path = "/v1/images/{id}",
    operation_id = "get_image",
    summary = "An image's metadata record",
    params(("id" = String, Path, description = "The image's ULID.")),
    responses(
        (status = 200, description = "The record", body = MetadataRecord),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
#[tracing::instrument(skip_all, fields(image_id = %id))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MetadataRecord>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(record(&state, id).await?))
}

/// `?status=&cursor=&limit=` of a listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only records of this status (parsed by the handler, to answer `invalid_query`).
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    /// Where the previous page ended (its `next_cursor`).
    cursor: Option<String>,
    /// Records per page.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: Option<usize>,
}

/// A page of records.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page {
    /// Newest first.
    images: Vec<MetadataRecord>,
    /// Pass as `cursor` for the next page; null at the end.
    next_cursor: Option<String>,
}

/// `GET /v1/images`: a page of records, newest first, optionally of one status.
#[utoipa::path(
    get,
    path = "/v1/images",
    operation_id = "list_images",
    summary = "List records, newest first",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of records", body = inline(Page)),
        (status = 400, description = "`invalid_query`: bad status, limit or parameter.", body = ErrorBody),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidQuery(e.body_text()))?;
    // An empty `status=` is not "any status": the parameter is an enum (see the OpenAPI document).
    let status = match query.status.as_deref() {
        None => None,
        Some(name) => Some(Status::ALL.into_iter().find(|s| s.as_str() == name).ok_or_else(|| {
            let names: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::InvalidQuery(format!("status {name:?} is not one of {}", names.join(", ")))
        })?),
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!("limit must be 1..={MAX_PAGE}")));
    }
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let page = state.metadata.list(status, cursor, limit).await?;
    Ok(Json(Page { images: page.records, next_cursor: page.cursor }))
}

/// `GET /v1/images/{id}/renditions/{name}`: a redirect to the rendition, or its bytes.
#[utoipa::path(
    get,
    path = "/v1/images/{id}/renditions/{name}",
    operation_id = "get_rendition",
    summary = "A rendition: its bytes, or a redirect to a short-lived URL",
    params(("id" = String, Path, description = "The image's ULID."), ("name" = String, Path)),
    responses(
        (status = 200, description = "The rendition", body = Binary, content_type = "image/*"),
        (status = 307, description = "Redirect to a presigned URL", headers(("Location" = String))),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such image or rendition.", body = ErrorBody),
        (status = 409, description = "`not_ready`: the image is not DONE.", body = ErrorBody),
    ),
)]
#[tracing::instrument(skip_all, fields(image_id = %id, rendition = %name))]
pub(crate) async fn rendition(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let record = record(&state, id).await?;
    if record.status != Status::Done {
        return Err(ApiError::NotReady(record.status));
    }
    let rendition = record
        .renditions
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("image {id} has no rendition {name:?}")))?;
    let download = state.urls.download(&rendition.key).await.map_err(|e| ApiError::Internal(Box::new(e)))?;
    if let Some(url) = download {
        return Ok((StatusCode::TEMPORARY_REDIRECT, [(LOCATION, url)]).into_response());
    }
    let (bytes, _) = state.objects.get(&rendition.key).await.map_err(|e| match e {
        imgpipe_core::ports::StoreError::NotFound { key } => {
            // A DONE record names its renditions; a missing one is our fault, not the client's.
            ApiError::Internal(format!("rendition object {key} of a DONE image is missing").into())
        }
        other => other.into(),
    })?;
    Ok(([(CONTENT_TYPE, rendition.format.content_type())], bytes).into_response())
}
