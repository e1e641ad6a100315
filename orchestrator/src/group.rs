//! Grouping queue messages into workflow inputs: a pure function, the same on AWS and locally.

use imgpipe_core::event::Notification;
use imgpipe_core::policy::{CHUNK_SIZE, MAX_CHUNKS_PER_WORKFLOW};
use imgpipe_core::seams::{ImageId, ORIGINALS_PREFIX, ObjectRef, WorkflowInput};
use std::collections::{BTreeSet, HashMap};

/// What to do with one batch of received messages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Workflows to start, each with the indices of the messages it carries.
    pub workflows: Vec<PlannedWorkflow>,
    /// Messages with nothing to do (test events, other keys, duplicates): acknowledge them.
    pub nothing_to_do: Vec<usize>,
    /// Messages that are not S3 notifications: never acknowledged, so the queue's
    /// dead-letter policy keeps them for a person to look at.
    pub unreadable: Vec<usize>,
    /// Messages naming an original that has no record, with its key: never acknowledged, so
    /// they come back until the record appears or the dead-letter policy keeps them.
    pub unrecorded: Vec<(usize, String)>,
}

/// One workflow and the messages whose objects it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedWorkflow {
    /// The workflow's input (keys only, chunked).
    pub input: WorkflowInput,
    /// Indices into the batch of the messages it carries.
    pub messages: Vec<usize>,
}

/// Groups message bodies (in receive order) into workflows of at most
/// `MAX_CHUNKS_PER_WORKFLOW` chunks of `CHUNK_SIZE` images. An object delivered more than
/// once (same key and etag) is processed once, re-drives ([`Notification::Redrive`]) included,
/// at the highest attempt it came with; a workflow holds objects of one attempt. The batch id
/// is derived from the objects and the attempt: a redelivered batch gets the same id, a
/// re-drive another. The same id does not make a second start a no-op (Express does not
/// deduplicate executions by name); the processor's conditional `begin` makes it harmless.
pub fn group<'a>(bodies: impl IntoIterator<Item = &'a str>) -> Plan {
    collect(bodies).plan(|_| true)
}

/// The originals a batch of messages names, each with the messages that carry it, before they
/// are grouped: [`Collected::ids`] says which records to look for, [`Collected::plan`] groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Collected {
    /// Each object, its attempt and the messages that carry it.
    objects: Vec<(ObjectRef, u32, Vec<usize>)>,
    nothing_to_do: Vec<usize>,
    unreadable: Vec<usize>,
}

impl Collected {
    /// The ids of the originals named (each once, in order; keys that name no id are left
    /// out: no record can exist for them).
    pub fn ids(&self) -> Vec<ImageId> {
        self.objects.iter().filter_map(|(o, _, _)| ImageId::from_original_key(&o.key)).collect()
    }

    /// Groups the objects for which `recorded` holds into workflows. The messages that carry
    /// any other object are refused ([`Plan::unrecorded`]) and carried by no workflow, so they
    /// are not acknowledged; the objects they also carry are still processed (their records
    /// exist, and a later delivery finds them final).
    pub fn plan(self, recorded: impl Fn(&ObjectRef) -> bool) -> Plan {
        let Collected { objects, nothing_to_do, unreadable } = self;
        let (mut objects, missing): (Vec<_>, Vec<_>) = objects.into_iter().partition(|(o, _, _)| recorded(o));
        let mut unrecorded: Vec<(usize, String)> = missing
            .into_iter()
            .flat_map(|(o, _, messages)| messages.into_iter().map(move |m| (m, o.key.clone())))
            .collect();
        unrecorded.sort_unstable();
        unrecorded.dedup_by_key(|(m, _)| *m);
        let refused: BTreeSet<usize> = unrecorded.iter().map(|&(m, _)| m).collect();
        let mut plan = Plan { nothing_to_do, unreadable, unrecorded, ..Plan::default() };
        // One attempt per workflow (its Choice compares one number); receive order within it.
        objects.sort_by_key(|(_, attempt, _)| *attempt);
        for same in objects.chunk_by(|a, b| a.1 == b.1) {
            let attempt = same[0].1;
            for batch in same.chunks(CHUNK_SIZE * MAX_CHUNKS_PER_WORKFLOW) {
                let mut messages: Vec<usize> =
                    batch.iter().flat_map(|(_, _, m)| m.iter().copied()).filter(|m| !refused.contains(m)).collect();
                messages.sort_unstable();
                messages.dedup();
                let refs: Vec<ObjectRef> = batch.iter().map(|(o, _, _)| o.clone()).collect();
                let input = WorkflowInput {
                    batch_id: batch_id(&refs, attempt),
                    attempt,
                    chunks: refs.chunks(CHUNK_SIZE).map(<[_]>::to_vec).collect(),
                };
                plan.workflows.push(PlannedWorkflow { input, messages });
            }
        }
        plan
    }
}

/// Parses message bodies (in receive order) into the originals they name, deduplicated.
pub fn collect<'a>(bodies: impl IntoIterator<Item = &'a str>) -> Collected {
    let mut plan = Collected::default();
    let mut objects: Vec<(ObjectRef, u32, Vec<usize>)> = Vec::new();
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    for (index, body) in bodies.into_iter().enumerate() {
        let (created, attempt) = match Notification::parse(body) {
            Err(_) => {
                plan.unreadable.push(index);
                continue;
            }
            Ok(Notification::Test) => (Vec::new(), 0),
            Ok(Notification::Created(objects)) => (objects, 0),
            Ok(Notification::Redrive(redrive)) => (redrive.images, redrive.attempt),
        };
        let mut carries = false;
        for object in created.into_iter().filter(|o| o.key.starts_with(ORIGINALS_PREFIX)) {
            let identity = (object.bucket.clone(), object.key.clone(), object.etag.clone());
            match seen.get(&identity) {
                Some(&at) => {
                    // The budget spent so far is the most any delivery says.
                    objects[at].1 = objects[at].1.max(attempt);
                    objects[at].2.push(index);
                }
                None => {
                    seen.insert(identity, objects.len());
                    objects.push((object, attempt, vec![index]));
                }
            }
            carries = true;
        }
        if !carries {
            plan.nothing_to_do.push(index);
        }
    }
    plan.objects = objects;
    plan
}

/// A deterministic id for a batch of objects at `attempt` (FNV-1a over bucket, key and etag;
/// `-r{attempt}` after a re-drive, so it differs from the first run's), usable as a Step
/// Functions execution name (≤ 80 characters of `[A-Za-z0-9-_]`).
pub fn batch_id(objects: &[ObjectRef], attempt: u32) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for object in objects {
        for part in [&object.bucket, &object.key, &object.etag] {
            for byte in part.bytes().chain([0u8]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    match attempt {
        0 => format!("batch-{hash:016x}-{}", objects.len()),
        n => format!("batch-{hash:016x}-{}-r{n}", objects.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgpipe_core::event::{Redrive, S3Notification};

    fn object(n: usize) -> ObjectRef {
        ObjectRef { bucket: "b".into(), key: format!("originals/{n:04}.jpg"), size: 10, etag: format!("e{n}") }
    }

    fn event(n: usize) -> String {
        S3Notification::object_created(&object(n), "2026-01-01T00:00:00Z").to_json()
    }

    #[test]
    fn chunks_and_workflows_are_bounded() {
        let n = CHUNK_SIZE * MAX_CHUNKS_PER_WORKFLOW + CHUNK_SIZE + 3;
        let bodies: Vec<String> = (0..n).map(event).collect();
        let plan = group(bodies.iter().map(String::as_str));
        assert_eq!(plan.workflows.len(), 2);
        let first = &plan.workflows[0];
        assert_eq!(first.input.chunks.len(), MAX_CHUNKS_PER_WORKFLOW);
        assert!(first.input.chunks.iter().all(|c| c.len() == CHUNK_SIZE));
        let second = &plan.workflows[1];
        assert_eq!(second.input.chunks.iter().map(Vec::len).collect::<Vec<_>>(), [CHUNK_SIZE, 3]);
        let carried: usize = plan.workflows.iter().map(|w| w.messages.len()).sum();
        assert_eq!(carried, n);
        // Every object exactly once, in order.
        let keys: Vec<String> = plan.workflows.iter().flat_map(|w| w.input.chunks.concat()).map(|o| o.key).collect();
        assert_eq!(keys, (0..n).map(|i| object(i).key).collect::<Vec<_>>());
    }

    #[test]
    fn duplicates_are_processed_once_and_both_messages_acknowledged() {
        let bodies = [event(1), event(2), event(1)];
        let plan = group(bodies.iter().map(String::as_str));
        assert_eq!(plan.workflows.len(), 1);
        assert_eq!(plan.workflows[0].input.chunks, vec![vec![object(1), object(2)]]);
        assert_eq!(plan.workflows[0].messages, [0, 1, 2]);
        assert!(plan.nothing_to_do.is_empty());
    }

    #[test]
    fn test_events_other_keys_and_garbage_are_sorted_out() {
        let other = ObjectRef { key: "processed/x/thumb.webp".into(), ..object(9) };
        let bodies = [
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#.to_string(),
            S3Notification::object_created(&other, "t").to_json(),
            "not json".to_string(),
            event(3),
        ];
        let plan = group(bodies.iter().map(String::as_str));
        assert_eq!(plan.nothing_to_do, [0, 1]);
        assert_eq!(plan.unreadable, [2]);
        assert_eq!(plan.workflows.len(), 1);
        assert_eq!(plan.workflows[0].messages, [3]);
    }

    #[test]
    fn messages_naming_an_unrecorded_original_are_refused_and_the_rest_grouped() {
        let ids = [ImageId::generate(), ImageId::generate(), ImageId::generate()];
        let original = |n: usize| ObjectRef { key: ids[n - 1].original_key("jpg"), ..object(n) };
        let event = |n: usize| S3Notification::object_created(&original(n), "t").to_json();
        let bodies = [event(1), event(2), event(1), event(3), "garbage".to_string()];
        let collected = collect(bodies.iter().map(String::as_str));
        assert_eq!(collected.ids(), ids);
        let plan = collected.plan(|o| o.key != original(1).key);
        assert_eq!(plan.unrecorded, [(0, original(1).key), (2, original(1).key)]);
        assert_eq!(plan.workflows.len(), 1);
        assert_eq!(plan.workflows[0].input.chunks, vec![vec![original(2), original(3)]]);
        assert_eq!(plan.workflows[0].messages, [1, 3]);
        assert_eq!(plan.unreadable, [4]);
    }

    #[test]
    fn redrives_are_grouped_by_attempt_with_the_same_dedupe() {
        let redrive = |attempt: u32, ns: &[usize]| {
            Redrive { attempt, images: ns.iter().map(|&n| object(n)).collect(), reason: "throttled".into() }.to_json()
        };
        // Object 1 comes as an S3 event and in a re-drive: once, at the re-drive's attempt.
        let bodies = [event(1), redrive(2, &[1, 2]), event(3), redrive(1, &[4])];
        let plan = group(bodies.iter().map(String::as_str));
        let got: Vec<(u32, Vec<ObjectRef>, Vec<usize>)> =
            plan.workflows.iter().map(|w| (w.input.attempt, w.input.chunks.concat(), w.messages.clone())).collect();
        assert_eq!(
            got,
            [(0, vec![object(3)], vec![2]), (1, vec![object(4)], vec![3]), (2, vec![object(1), object(2)], vec![0, 1])]
        );
        assert_ne!(
            plan.workflows[2].input.batch_id,
            batch_id(&[object(1), object(2)], 0),
            "a re-drive is a new execution"
        );
        assert!(plan.workflows[2].input.batch_id.ends_with("-r2"));
        // The attempt travels in the workflow input's JSON.
        let json = serde_json::to_value(&plan.workflows[1].input).unwrap();
        assert_eq!(json["attempt"], 1);
    }

    #[test]
    fn batch_ids_are_deterministic_and_valid_execution_names() {
        let a = batch_id(&[object(1), object(2)], 0);
        assert_eq!(a, batch_id(&[object(1), object(2)], 0));
        assert_ne!(a, batch_id(&[object(2), object(1)], 0));
        let redriven = batch_id(&[object(1), object(2)], u32::MAX);
        assert_ne!(a, redriven);
        for id in [a, redriven] {
            assert!(id.len() <= 80 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn workflow_inputs_stay_well_under_256_kb() {
        let long = |n: usize| ObjectRef { key: format!("originals/{}{n:04}.jpg", "x".repeat(200)), ..object(n) };
        let bodies: Vec<String> = (0..CHUNK_SIZE * MAX_CHUNKS_PER_WORKFLOW)
            .map(|n| S3Notification::object_created(&long(n), "t").to_json())
            .collect();
        let plan = group(bodies.iter().map(String::as_str));
        let size = serde_json::to_vec(&plan.workflows[0].input).unwrap().len();
        assert!(size < 200 * 1024, "{size} bytes");
    }
}
