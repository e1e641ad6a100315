//! `/v1/presets`: the presets an upload may name, and what each makes.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use imgpipe_core::OutputFormat;
use imgpipe_core::preset::{DEFAULT_PRESET, Fit, Preset, Rendition};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of `GET /v1/presets`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Presets {
    /// The preset of an upload that names none.
    default: String,
    /// Every preset, by name.
    presets: Vec<PresetSummary>,
}

/// A preset: its name and its renditions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PresetSummary {
    name: String,
    /// In the preset's order.
    renditions: Vec<RenditionSummary>,
}

/// What one rendition of a preset is.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RenditionSummary {
    name: String,
    format: OutputFormat,
    /// `inside`, `cover` or `exact`.
    fit: &'static str,
    /// The box's width, if bounded.
    width: Option<u32>,
    /// The box's height, if bounded.
    height: Option<u32>,
    /// For `cover`: which part the crop keeps (`center`, `entropy` or `attention`).
    #[serde(skip_serializing_if = "Option::is_none")]
    gravity: Option<&'static str>,
    /// Encoder quality.
    quality: u8,
    /// For `avif`: the encoder speed, 1 (smallest files) to 10 (fastest).
    #[serde(skip_serializing_if = "Option::is_none")]
    speed: Option<u8>,
    /// Whether the preset's watermark is drawn on it.
    watermark: bool,
    /// Whether an animated original stays animated in it.
    animated: bool,
}

impl From<&Preset> for PresetSummary {
    fn from(preset: &Preset) -> Self {
        Self { name: preset.name.clone(), renditions: preset.renditions.iter().map(RenditionSummary::from).collect() }
    }
}

impl From<&Rendition> for RenditionSummary {
    fn from(rendition: &Rendition) -> Self {
        let (fit, width, height, gravity) = match rendition.fit {
            Fit::Inside { width, height, .. } => ("inside", width, height, None),
            Fit::Cover { width, height, gravity } => ("cover", Some(width), Some(height), Some(gravity.as_str())),
            Fit::Exact { width, height } => ("exact", Some(width), Some(height), None),
        };
        Self {
            name: rendition.name.clone(),
            format: rendition.format,
            fit,
            width,
            height,
            gravity,
            quality: rendition.quality,
            speed: (rendition.format == OutputFormat::Avif).then_some(rendition.speed),
            watermark: rendition.watermark,
            animated: rendition.animated,
        }
    }
}

/// `GET /v1/presets`: the presets this deployment serves now (on AWS, as last refreshed).
#[utoipa::path(
    get,
    path = "/v1/presets",
    operation_id = "list_presets",
    summary = "The presets an upload may name, with their renditions",
    responses((status = 200, description = "The presets", body = inline(Presets))),
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<Presets> {
    let catalog = state.presets.current();
    Json(Presets { default: DEFAULT_PRESET.to_owned(), presets: catalog.iter().map(PresetSummary::from).collect() })
}
