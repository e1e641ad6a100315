//! The `process` command through the library (`imgpipe::process::run`), in this process: the
//! summary it returns, and the files it exports.

mod support;

use imgpipe::cli::ProcessArgs;
use imgpipe_core::ErrorKind;
use imgpipe_core::seams::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_good_images_and_a_broken_one_give_two_done_one_failed_and_the_renditions() {
    let fixtures = support::shared("IMGPIPE_FIXTURES", "fixtures");
    let input = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let png = std::fs::read(fixtures.join("gradients-rgb8.png")).unwrap();
    std::fs::write(input.path().join("gradients.png"), &png).unwrap();
    std::fs::copy(fixtures.join("Channel_digital_image_CMYK_color.jpg"), input.path().join("cmyk.jpg")).unwrap();
    std::fs::write(input.path().join("cut.png"), &png[..5000]).unwrap();

    let args = ProcessArgs::parse_from([
        input.path().to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
        "--workers",
        "1",
    ])
    .unwrap();
    let summary = imgpipe::process::run(&args).await.unwrap();

    assert_eq!((summary.lines.len(), summary.done(), summary.failed()), (3, 2, 1), "{summary:#?}");
    assert!(summary.succeeded(), "a broken image is an outcome, not a failed run");
    let cut = summary.lines.iter().find(|l| l.file.as_os_str() == "cut.png").unwrap();
    assert_eq!((cut.status, cut.error.as_ref().map(|e| e.kind)), (Status::Failed, Some(ErrorKind::Corrupt)));
    for file in ["gradients.png", "cmyk.jpg"] {
        let line = summary.lines.iter().find(|l| l.file.as_os_str() == file).unwrap();
        assert_eq!(line.status, Status::Done, "{file}");
        assert_eq!(line.renditions.len(), 3, "{file}");
        for name in ["thumb.webp", "medium.jpg", "large.jpg"] {
            let exported = out.path().join(file).join(name);
            assert!(line.renditions.contains(&exported), "{file}: {name} listed");
            let bytes = std::fs::read(&exported).unwrap();
            let record = line.record.as_ref().unwrap();
            let stored = record.renditions.iter().find(|r| name.starts_with(&r.name)).unwrap();
            assert_eq!(bytes.len() as u64, stored.bytes, "{file}: {name} is the stored rendition");
        }
    }
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(summary.path()).unwrap()).unwrap();
    assert_eq!(written.as_array().unwrap().len(), 3);
}
