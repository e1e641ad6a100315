//! The OpenAPI 3.0 document of `GET /v1/openapi.json`, built from [`ROUTES`]: each route brings
//! its own operation, so a route cannot be served without being described, nor the reverse.

use crate::error::ApiError;
use crate::routes::{Access, ROUTES};
use serde_json::{Map, Value, json};

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut operation = route.operation();
        if route.access == Access::Key {
            operation["security"] = json!([{"bearer": []}, {"apiKey": []}]);
            operation["responses"]["401"] = error("No API key, or the wrong one (`unauthorized`).");
        } else {
            operation["security"] = json!([]);
        }
        let item = paths.entry(route.path).or_insert_with(|| json!({}));
        item[route.verb.as_str()] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "imgpipe",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Upload images; get resized, watermarked renditions and one metadata record per image. \
                            Errors are JSON with a stable `code`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "enum": ApiError::CODES},
                        "message": {"type": "string"},
                    },
                },
                "Status": {"type": "string", "enum": ["AWAITING_UPLOAD", "PENDING", "PROCESSING", "DONE", "FAILED"]},
                "Record": {
                    "type": "object",
                    "description": "The image's metadata record (DESIGN.md, \"Metadata record\").",
                    "required": ["id", "status", "source", "preset", "created_ms"],
                    "properties": {
                        "id": {"type": "string", "description": "ULID"},
                        "status": {"$ref": "#/components/schemas/Status"},
                        "source": {
                            "type": "object",
                            "properties": {
                                "key": {"type": "string"},
                                "bytes": {"type": "integer"},
                                "etag": {"type": "string"},
                                "content_type": {"type": "string"},
                            },
                        },
                        "preset": {"type": "string"},
                        "original": {"type": "object"},
                        "renditions": {"type": "array", "items": {"type": "object"}},
                        "error": {
                            "type": "object",
                            "properties": {
                                "kind": {"type": "string", "enum": ["corrupt", "unsupported", "too_large", "limits", "internal"]},
                                "message": {"type": "string"},
                            },
                        },
                        "attempts": {"type": "integer"},
                        "created_ms": {"type": "integer"},
                        "started_ms": {"type": "integer"},
                        "finished_ms": {"type": "integer"},
                        "durations_ms": {"type": "object"},
                        "expires_at": {"type": "integer"},
                    },
                },
                "Accepted": {
                    "type": "object",
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "string"},
                                    "status": {"$ref": "#/components/schemas/Status"},
                                    "url": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    })
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The image's ULID."})
}

fn preset_param() -> Value {
    json!({"name": "preset", "in": "query", "required": false, "schema": {"type": "string", "default": "default"}})
}

/// `POST /v1/images`.
pub(crate) fn upload_images() -> Value {
    json!({
        "summary": "Upload one image (raw body) or several (multipart/form-data)",
        "parameters": [preset_param()],
        "requestBody": {
            "required": true,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "image/*": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                            "preset": {"type": "string"},
                        },
                    },
                },
            },
        },
        "responses": {
            "202": {"description": "Accepted: stored and queued", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
            "400": error("`unknown_preset`, `empty_upload`, `too_many_files`, `invalid_body`, `invalid_query`."),
            "413": error("`payload_too_large`: over the upload limit; nothing was stored."),
        },
    })
}

/// `GET /v1/images`.
pub(crate) fn list_images() -> Value {
    json!({
        "summary": "List records, newest first",
        "parameters": [
            {"name": "status", "in": "query", "required": false, "schema": {"$ref": "#/components/schemas/Status"}},
            {"name": "cursor", "in": "query", "required": false, "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
        ],
        "responses": {
            "200": {
                "description": "A page of records",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {
                        "images": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}},
                        "next_cursor": {"type": "string", "nullable": true},
                    },
                }}},
            },
            "400": error("`invalid_query`: bad status, limit or parameter."),
        },
    })
}

/// `GET /v1/images/{id}`.
pub(crate) fn get_image() -> Value {
    json!({
        "summary": "An image's metadata record",
        "parameters": [id_param()],
        "responses": {
            "200": {"description": "The record", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Record"}}}},
            "400": error("`invalid_id`"),
            "404": error("`not_found`"),
        },
    })
}

/// `GET /v1/images/{id}/renditions/{name}`.
pub(crate) fn get_rendition() -> Value {
    json!({
        "summary": "A rendition: its bytes, or a redirect to a short-lived URL",
        "parameters": [id_param(), {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "The rendition", "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}},
            "307": {"description": "Redirect to a presigned URL", "headers": {"Location": {"schema": {"type": "string"}}}},
            "400": error("`invalid_id`"),
            "404": error("`not_found`: no such image or rendition."),
            "409": error("`not_ready`: the image is not DONE."),
        },
    })
}

/// `POST /v1/uploads`.
pub(crate) fn presign_uploads() -> Value {
    json!({
        "summary": "Reserve upload slots and get one presigned PUT per file",
        "requestBody": {
            "required": true,
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "preset": {"type": "string"},
                    "files": {"type": "array", "minItems": 1, "items": {
                        "type": "object",
                        "required": ["filename", "content_type", "bytes"],
                        "properties": {
                            "filename": {"type": "string"},
                            "content_type": {"type": "string", "description": "An image type this deployment takes (image/jpeg, image/png, image/gif, image/webp by default)"},
                            "bytes": {"type": "integer", "minimum": 1},
                        },
                    }},
                },
            }}},
        },
        "responses": {
            "200": {
                "description": "One upload per file, in order",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"uploads": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "filename": {"type": "string"},
                            "method": {"type": "string", "enum": ["PUT"]},
                            "url": {"type": "string"},
                            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                            "expires_at": {"type": "integer", "description": "Unix seconds"},
                        },
                    }}},
                }}},
            },
            "400": error("`unknown_preset`, `empty_upload`, `too_many_files`, `invalid_body`, `unsupported_content_type` (the message names the field, e.g. `files[3].content_type`)."),
            "413": error("`payload_too_large`: a file over the upload limit, or an oversized request."),
        },
    })
}

/// `PUT /v1/uploads/{id}`.
pub(crate) fn put_upload() -> Value {
    let query = |name: &str, schema: Value| json!({"name": name, "in": "query", "required": true, "schema": schema});
    json!({
        "summary": "Upload the bytes of a reserved slot (local mode's presigned URL; the signature is the credential)",
        "parameters": [
            id_param(),
            query("expires", json!({"type": "integer"})),
            query("size", json!({"type": "integer"})),
            query("type", json!({"type": "string"})),
            query("sig", json!({"type": "string"})),
        ],
        "requestBody": {"required": true, "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {
            "200": {"description": "Stored and queued", "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"}},
            }}}},
            "400": error("`invalid_id`, `content_type_mismatch`, `size_mismatch`."),
            "403": error("`bad_signature`, `url_expired`."),
            "409": error("`already_uploaded`"),
        },
    })
}

/// `GET /healthz`.
pub(crate) fn healthz() -> Value {
    json!({
        "summary": "Liveness",
        "responses": {"200": {"description": "Serving", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}},
        }}}}},
    })
}

/// `GET /v1/queue`.
pub(crate) fn queue() -> Value {
    json!({
        "summary": "Queue depth: messages waiting, in flight, and moved to the dead-letter queue",
        "responses": {
            "200": {"description": "Counts", "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {
                    "visible": {"type": "integer"},
                    "in_flight": {"type": "integer"},
                    "dead_letters": {"type": "integer"},
                },
            }}}},
            "404": error("`no_route`: this process does not see the queue."),
        },
    })
}

/// `GET /metrics`.
pub(crate) fn metrics() -> Value {
    json!({
        "summary": "Prometheus metrics: queue depth, images per status, failures per kind, stage latencies",
        "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
    })
}

/// `GET /v1/openapi.json`.
pub(crate) fn openapi() -> Value {
    json!({
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.0", "content": {"application/json": {"schema": {"type": "object"}}}}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_every_route_once_with_its_path_parameters() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let described: usize = paths.values().map(|item| item.as_object().unwrap().len()).sum();
        assert_eq!(described, ROUTES.len());
        for route in ROUTES {
            let operation = &doc["paths"][route.path][route.verb.as_str()];
            assert!(operation["responses"].is_object(), "{route:?}");
            let declared: Vec<_> = operation["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
                .unwrap_or_default();
            let in_path: Vec<_> =
                route.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            assert_eq!(declared, in_path, "{route:?}");
        }
    }
}
