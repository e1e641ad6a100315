//! The S3 ObjectCreated event notification: what S3 sends to SQS on AWS, and what the local
//! upload path enqueues itself, so the orchestrator parses one shape in both modes.

use crate::record::{Source, rfc3339};
use crate::seams::ObjectRef;
use serde::{Deserialize, Serialize};

/// A notification body as S3 sends it: records, or a one-off `s3:TestEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Notification {
    /// The events (S3 sends one per notification, but the format allows many).
    #[serde(rename = "Records")]
    pub records: Vec<S3Record>,
}

/// One event record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Record {
    /// `2.1`.
    pub event_version: String,
    /// `aws:s3`.
    pub event_source: String,
    /// e.g. `ObjectCreated:Put`.
    pub event_name: String,
    /// ISO 8601 time.
    pub event_time: String,
    /// The bucket and object.
    pub s3: S3Entity,
}

/// The `s3` member of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Entity {
    /// The bucket.
    pub bucket: S3Bucket,
    /// The object.
    pub object: S3Object,
}

/// The bucket of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Bucket {
    /// Bucket name.
    pub name: String,
}

/// The object of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Object {
    /// The key, form-encoded (`/` may be `%2F`, a space is `+`).
    pub key: String,
    /// Size in bytes (absent on some event types).
    #[serde(default)]
    pub size: u64,
    /// Entity tag.
    #[serde(default)]
    pub e_tag: String,
    /// Orders events of the same key.
    #[serde(default)]
    pub sequencer: String,
}

/// What one queue message holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// S3's `s3:TestEvent`, sent when notifications are configured: nothing to do.
    Test,
    /// Objects created, keys decoded.
    Created(Vec<ObjectRef>),
    /// Originals sent back to the queue to be tried again (see [`Redrive`]).
    Redrive(Redrive),
}

/// Originals sent back to the ingest queue: a chunk the state machine (or the local runner)
/// could not run for lack of capacity, or records the sweeper found stuck. It travels beside
/// S3's notifications as `{"imgpipe_redrive": {attempt, images, reason}}`, so the orchestrator
/// groups it with the same dedupe, and the queue's delay, lease and dead-letter policy apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redrive {
    /// How many times these images were sent back before (1 for the first re-drive): the
    /// workflow compares it with [`MAX_REDRIVES`](crate::policy::MAX_REDRIVES).
    pub attempt: u32,
    /// The originals, as the S3 events named them (keys decoded).
    pub images: Vec<ObjectRef>,
    /// Why they were sent back, for the logs.
    #[serde(default)]
    pub reason: String,
}

/// The key of a re-drive envelope: an S3 notification never has it.
pub const REDRIVE_KEY: &str = "imgpipe_redrive";

impl Redrive {
    /// The message body: `{"imgpipe_redrive": {...}}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ REDRIVE_KEY: self }).to_string()
    }
}

/// A message body that is neither an S3 notification nor a test event.
#[derive(Debug, thiserror::Error)]
#[error("not an S3 event notification: {0}")]
pub struct NotAnEvent(String);

impl Notification {
    /// Parses a queue message body; non-ObjectCreated records are dropped.
    pub fn parse(body: &str) -> Result<Self, NotAnEvent> {
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| NotAnEvent(e.to_string()))?;
        if value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
            return Ok(Notification::Test);
        }
        if let Some(redrive) = value.get(REDRIVE_KEY) {
            let redrive = Redrive::deserialize(redrive).map_err(|e| NotAnEvent(format!("re-drive: {e}")))?;
            return Ok(Notification::Redrive(redrive));
        }
        let notification: S3Notification = serde_json::from_value(value).map_err(|e| NotAnEvent(e.to_string()))?;
        let objects = notification
            .records
            .into_iter()
            .filter(|r| r.event_name.starts_with("ObjectCreated:"))
            .map(|r| ObjectRef {
                bucket: r.s3.bucket.name,
                key: form_decode(&r.s3.object.key),
                size: r.s3.object.size,
                etag: r.s3.object.e_tag,
            })
            .collect();
        Ok(Notification::Created(objects))
    }
}

impl S3Notification {
    /// The notification S3 would send for `object` having been put at `event_time`.
    pub fn object_created(object: &ObjectRef, event_time: &str) -> Self {
        S3Notification {
            records: vec![S3Record {
                event_version: "2.1".into(),
                event_source: "aws:s3".into(),
                event_name: "ObjectCreated:Put".into(),
                event_time: event_time.into(),
                s3: S3Entity {
                    bucket: S3Bucket { name: object.bucket.clone() },
                    object: S3Object {
                        key: form_encode(&object.key),
                        size: object.size,
                        e_tag: object.etag.clone(),
                        sequencer: String::new(),
                    },
                },
            }],
        }
    }

    /// The notification for an original stored in `bucket` as `source` at `at_ms` (Unix
    /// milliseconds): what S3 sends on AWS, and what the local backend enqueues for every
    /// accepted or recovered upload.
    pub fn original_stored(bucket: &str, source: &Source, at_ms: u64) -> Self {
        let object = ObjectRef {
            bucket: bucket.to_owned(),
            key: source.key.clone(),
            size: source.bytes,
            etag: source.etag.clone(),
        };
        Self::object_created(&object, &rfc3339(at_ms))
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("notifications serialise")
    }
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
pub fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a key as S3 does in event notifications.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_form_decoded() {
        assert_eq!(form_decode("originals%2Fmy+photo%C3%A9.jpg"), "originals/my photoé.jpg");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz%4"), "%zz%4");
        for key in ["originals/01JD.jpg", "a b/ü+%.png"] {
            assert_eq!(form_decode(&form_encode(key)), key);
        }
    }

    #[test]
    fn test_events_and_other_event_types_carry_no_objects() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00Z","Bucket":"b"}"#;
        assert_eq!(Notification::parse(test).unwrap(), Notification::Test);
        let object = ObjectRef { bucket: "b".into(), key: "originals/x y.jpg".into(), size: 5, etag: "e".into() };
        let mut event = S3Notification::object_created(&object, "2026-01-01T00:00:00Z");
        assert!(event.to_json().contains("originals%2Fx+y.jpg"));
        assert_eq!(Notification::parse(&event.to_json()).unwrap(), Notification::Created(vec![object]));
        event.records[0].event_name = "ObjectRemoved:Delete".into();
        assert_eq!(Notification::parse(&event.to_json()).unwrap(), Notification::Created(vec![]));
        assert!(Notification::parse("{}").is_err());
        assert!(Notification::parse("not json").is_err());
    }

    #[test]
    fn a_stored_original_is_announced_with_its_source() {
        let source = Source {
            key: "originals/ab/01JD.jpg".into(),
            bytes: 7,
            etag: "e".into(),
            content_type: "image/jpeg".into(),
        };
        let event = S3Notification::original_stored("b", &source, 1_767_225_600_000);
        assert_eq!(event.records[0].event_time, rfc3339(1_767_225_600_000));
        let object = ObjectRef { bucket: "b".into(), key: source.key.clone(), size: 7, etag: "e".into() };
        assert_eq!(Notification::parse(&event.to_json()).unwrap(), Notification::Created(vec![object]));
    }

    #[test]
    fn redrives_round_trip_and_a_bad_one_is_unreadable() {
        let object = ObjectRef { bucket: "b".into(), key: "originals/x y.jpg".into(), size: 5, etag: "e".into() };
        let redrive = Redrive { attempt: 2, images: vec![object], reason: "throttled".into() };
        let body = redrive.to_json();
        assert!(body.starts_with(r#"{"imgpipe_redrive":{"#), "{body}");
        assert_eq!(Notification::parse(&body).unwrap(), Notification::Redrive(redrive));
        // What the state machine sends (the reason is optional; keys are not form-encoded).
        let from_asl = r#"{"imgpipe_redrive":{"attempt":1,"images":[{"bucket":"b","key":"originals/a b.jpg","size":1,"etag":"e"}]}}"#;
        let Notification::Redrive(parsed) = Notification::parse(from_asl).unwrap() else { panic!("not a re-drive") };
        assert_eq!(
            (parsed.attempt, parsed.images[0].key.as_str(), parsed.reason.as_str()),
            (1, "originals/a b.jpg", "")
        );
        assert!(Notification::parse(r#"{"imgpipe_redrive":{"images":[]}}"#).is_err(), "the attempt is required");
    }
}
