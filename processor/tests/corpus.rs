//! Golden tests on `../shared/corpus`: every file ends in the class its manifest expects,
//! under the policy the manifest states.

mod support;

use imgpipe_core::{InputFormat, Limits};
use serde_json::Value;

fn policy_limits(manifest: &Value) -> Limits {
    let policy = &manifest["policy"];
    let formats = policy["allowed_formats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| serde_json::from_value::<InputFormat>(f.clone()).unwrap())
        .collect();
    Limits {
        max_input_bytes: policy["max_bytes"].as_u64().unwrap(),
        max_pixels: policy["max_pixels"].as_u64().unwrap(),
        max_side: policy["max_dimension"].as_u64().unwrap() as u32,
        max_frames: policy["max_frames"].as_u64().unwrap() as u32,
        formats,
        ..Limits::default()
    }
}

/// Files that end in one of the manifest's `acceptable` classes instead of `expected`, and why.
const ACCEPTED_DEVIATIONS: &[(&str, &str, &str)] = &[(
    "webp/panic.webp",
    "ok",
    "a fuzz regression for a decoder panic that is fixed: libwebp (Pillow) and image-webp both decode \
     it to a consistent 100×30 image, and nothing in its container or bitstream is out of spec",
)];

/// A preset that keeps animations, in both formats, beside a still: animated files take the
/// frame-by-frame path under it.
const ANIMATED: &str = r#"[presets.animated]
renditions = [
  { name = "webp", width = 200, format = "webp", animated = true },
  { name = "gif", width = 120, height = 120, fit = "cover", gravity = "attention", format = "gif", animated = true },
  { name = "still", width = 100, format = "png" },
]"#;

#[test]
fn every_corpus_file_ends_in_its_expected_class() {
    ends_in_its_expected_class(&support::default_recipe());
}

#[test]
fn every_corpus_file_ends_in_its_expected_class_when_animations_are_kept() {
    ends_in_its_expected_class(&support::recipe(ANIMATED, "animated"));
}

fn ends_in_its_expected_class(recipe: &processor::Recipe) {
    let dir = support::corpus();
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let limits = policy_limits(&manifest);
    let files = manifest["files"].as_array().unwrap();
    assert!(files.len() >= 76, "the manifest lists {} files", files.len());
    let mut mismatches = Vec::new();
    for file in files {
        let path = file["path"].as_str().unwrap();
        let expected = file["expected"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(bytes.len() as u64, file["bytes"].as_u64().unwrap(), "{path} differs from the manifest");
        let (class, detail) = match processor::process(&bytes, recipe, &limits) {
            Ok(out) => ("ok".to_owned(), format!("{}×{}", out.facts.width, out.facts.height)),
            Err(e) => (format!("reject-{}", e.kind.as_str().replace('_', "-")), e.message),
        };
        let deviation = ACCEPTED_DEVIATIONS.iter().find(|d| d.0 == path);
        let acceptable = file["acceptable"].as_array().unwrap().iter().any(|a| a == class.as_str());
        if deviation.is_some_and(|d| d.1 == class && acceptable) {
            continue;
        }
        if class != expected {
            mismatches.push(format!("{path}: expected {expected}, got {class} ({detail})"));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} files differ:\n{}", mismatches.len(), files.len(), mismatches.join("\n"));
}
