//! Shared by the kernel benchmarks and the `compare` command: where the reference images are,
//! and the workload of sharp's own benchmark.

#![warn(missing_docs)]

use std::path::PathBuf;

/// sharp's benchmark image (2725×2225 baseline JPEG), from `../shared/fixtures`.
pub const SHARP_BENCH_IMAGE: &str = "2569067123_aca715a2ee_o.jpg";

/// A PNG with alpha (2048×1536 RGBA), from `../shared/fixtures`.
pub const ALPHA_PNG: &str = "alpha-premultiply-2048x1536-paper.png";

/// The workload of sharp's benchmark: resize to 720×588 (Lanczos3), JPEG quality 80.
pub const SHARP_WORKLOAD_TOML: &str = r#"
[presets.sharp-bench]
renditions = [{ name = "out", width = 720, height = 588, fit = "cover", format = "jpeg", quality = 80 }]
"#;

/// The fixtures directory: `$IMGPIPE_FIXTURES`, else `../shared/fixtures` beside the checkout.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("IMGPIPE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"))
}

/// Reads one fixture, with a message that says where it was looked for.
pub fn read_fixture(name: &str) -> std::io::Result<Vec<u8>> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).map_err(|e| {
        std::io::Error::new(e.kind(), format!("{}: {e} (set IMGPIPE_FIXTURES to ../shared/fixtures)", path.display()))
    })
}
