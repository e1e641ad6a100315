//! `imgpipe process DIR` end to end: the real binary on a temp folder of good and bad files.

mod support;

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    support::shared("IMGPIPE_FIXTURES", "fixtures")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imgpipe-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn process_writes_renditions_and_a_summary_for_good_and_bad_files() {
    let input = temp_dir("in");
    let out = temp_dir("out");
    std::fs::copy(fixtures().join("gradients-rgb8.png"), input.join("gradients.png")).unwrap();
    std::fs::create_dir(input.join("nested")).unwrap();
    std::fs::copy(fixtures().join("Channel_digital_image_CMYK_color.jpg"), input.join("nested/cmyk.jpg")).unwrap();
    std::fs::write(input.join("notes.txt"), "not an image").unwrap();
    std::fs::write(input.join("empty.jpg"), "").unwrap();
    std::fs::write(input.join("cut.png"), &std::fs::read(fixtures().join("gradients-rgb8.png")).unwrap()[..5000])
        .unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_imgpipe"))
        .args(["process", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--workers", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("5 images") && stdout.contains("2 done, 3 failed"), "{stdout}");

    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let by_file = |name: &str| summary.as_array().unwrap().iter().find(|r| r["file"] == name).unwrap().clone();
    assert_eq!(by_file("notes.txt")["error"]["kind"], "unsupported");
    assert_eq!(by_file("empty.jpg")["error"]["kind"], "unsupported");
    assert_eq!(by_file("cut.png")["error"]["kind"], "corrupt");
    let cmyk = by_file("nested/cmyk.jpg");
    assert_eq!(cmyk["status"], "DONE");
    assert_eq!(cmyk["record"]["original"]["width"], 500);
    assert_eq!(cmyk["record"]["renditions"].as_array().unwrap().len(), 3);
    for name in ["thumb.webp", "medium.jpg", "large.jpg"] {
        assert!(out.join("nested/cmyk.jpg").join(name).is_file(), "{name}");
        assert!(out.join("gradients.png").join(name).is_file(), "{name}");
    }
}

#[test]
fn a_bad_presets_file_is_refused_with_the_field_and_line() {
    let dir = temp_dir("presets");
    std::fs::write(
        dir.join("presets.toml"),
        "[presets.p]\nrenditions = [{ name = \"x\", width = 0, format = \"png\" }]\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_imgpipe"))
        .args(["process", dir.to_str().unwrap(), "--presets", dir.join("presets.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 2") && stderr.contains("1..=16383"), "{stderr}");
}
