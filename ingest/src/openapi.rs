//! The OpenAPI document of `GET /v1/openapi.json`: the parts no handler or type describes (info,
//! security schemes, the key's requirement and its 401). Each operation is a `#[utoipa::path]`
//! beside its handler in `routes`, with schemas derived from the types it reads and writes; the
//! router gathers them from the routes it mounts ([`utoipa_axum`]), so a route cannot be served
//! without being described, nor the reverse.

use crate::error::ErrorBody;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref};
use utoipa::{Modify, OpenApi, ToSchema};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Requires the API key when one is configured.
    Key,
    /// Open: health checks, and signed uploads (the signature is the credential).
    Open,
}

/// A request or response body of raw bytes (`type: string, format: binary`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code)] Vec<u8>);

/// What the document says beyond its operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "imgpipe",
        description = "Upload images; get resized, watermarked renditions and one metadata record per image. \
                       Errors are JSON with a stable `code`.",
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
)]
struct Base;

/// The two ways to present the API key.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme("apiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))));
    }
}

/// The whole document: the base, and each group of operations marked with who may call them.
pub fn document(groups: impl IntoIterator<Item = (Access, Document)>) -> Document {
    let mut document = Base::openapi();
    for (access, mut group) in groups {
        for item in group.paths.paths.values_mut() {
            for operation in operations(item) {
                mark(operation, access);
            }
        }
        document.merge(group);
    }
    document
}

/// Every operation of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Keyed operations accept either scheme and may answer 401; open ones need neither.
fn mark(operation: &mut Operation, access: Access) {
    match access {
        Access::Key => {
            let schemes = ["bearer", "apiKey"].map(|name| SecurityRequirement::new(name, Vec::<String>::new()));
            operation.security = Some(schemes.into());
            let unauthorized = ResponseBuilder::new()
                .description("No API key, or the wrong one (`unauthorized`).")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorBody::name()))).build(),
                )
                .build();
            operation.responses.responses.insert("401".to_owned(), unauthorized.into());
        }
        Access::Open => operation.security = Some(Vec::new()),
    }
}
