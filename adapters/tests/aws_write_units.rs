//! DynamoDB write units per image, measured on moto (`IMGPIPE_MOTO_URL`): the real adapter takes
//! records through their life (direct upload, presigned upload, failure) while an SDK
//! interceptor counts every write request, and the item after each step is read back and sized
//! by DynamoDB's rules. moto meters nothing (its `ConsumedCapacity` is a constant), so the units
//! are computed here from the items the code really wrote, for the index as it is (sharded,
//! keys and `error` projected) and as it was (keyed on `status`, projecting ALL).
//!
//! DynamoDB's rules used (Developer Guide, "Item sizes and formats", "Provisioned throughput
//! considerations for global secondary indexes"):
//! - an item's size is the sum of its attribute names' and values' sizes: a string its UTF-8
//!   length, a number about one byte per two significant digits plus one, a map or list 3 bytes
//!   plus one per element plus its elements;
//! - a write costs one unit per started KB of the larger of the item before and after;
//! - an index entry is written when the item's index key or projected attributes change: a
//!   changed key deletes the old entry and puts a new one, each a unit per started KB of the
//!   projected entry (the table's key, the index's key and the projected attributes).

use adapters::aws::dynamo::{self, CREATED_KEY, STATUS_SHARD};
use adapters::aws::{DynamoMetadataStore, emulator};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use imgpipe_core::ports::MetadataStore;
use imgpipe_core::record::{MetadataRecord, Original, RenditionRecord, Source, StageDurations};
use imgpipe_core::seams::{ImageId, Status};
use imgpipe_core::{ErrorKind, ImageError, InputFormat, OutputFormat};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Item = HashMap<String, AttributeValue>;

/// Every DynamoDB write request the store sends: its operation, and the items or keys it names.
#[derive(Debug, Clone, Default)]
struct WriteLog(Arc<Mutex<Vec<String>>>);

impl WriteLog {
    /// Operations logged since the last call, one entry per item written.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Intercept for WriteLog {
    fn name(&self) -> &'static str {
        "WriteLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let body: serde_json::Value =
            request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
        let items = match operation.as_str() {
            "PutItem" | "UpdateItem" | "DeleteItem" => 1,
            "BatchWriteItem" => body["RequestItems"]
                .as_object()
                .map_or(0, |t| t.values().filter_map(|v| v.as_array()).map(Vec::len).sum()),
            _ => 0,
        };
        self.0.lock().unwrap().extend(std::iter::repeat_n(operation, items));
        Ok(())
    }
}

/// DynamoDB's size of one attribute value.
fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => {
            let digits = n.trim_start_matches('-').replace('.', "");
            let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
            significant.div_ceil(2) + 1
        }
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + value_size(v) + 1).sum::<usize>(),
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        other => panic!("the record holds no {other:?}"),
    }
}

fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn units(bytes: usize) -> u32 {
    bytes.div_ceil(1024).max(1) as u32
}

/// An index layout: which key an item has in it, and what its entry holds.
#[derive(Clone, Copy)]
enum Layout {
    /// Hash `status_shard`, keys and `error` projected (what the code and template declare).
    Sharded,
    /// Hash `status`, everything projected (before issue 12), the same items without the shard
    /// attributes.
    Unsharded,
}

impl Layout {
    fn entry(self, item: &Item) -> Option<(String, usize)> {
        match self {
            Layout::Sharded => {
                let key = item.get(STATUS_SHARD)?.as_n().ok()?.clone();
                let projected = ["id", STATUS_SHARD, CREATED_KEY, "error"];
                let size = item
                    .iter()
                    .filter(|(name, _)| projected.contains(&name.as_str()))
                    .map(|(n, v)| n.len() + value_size(v))
                    .sum();
                Some((key, size))
            }
            Layout::Unsharded => {
                let key = item.get("status")?.as_s().ok()?.clone();
                Some((key, item_size(&self.table_item(item))))
            }
        }
    }

    fn table_item(self, item: &Item) -> Item {
        let mut item = item.clone();
        if let Layout::Unsharded = self {
            item.remove(STATUS_SHARD);
            item.remove(dynamo::SHARD);
        }
        item
    }

    /// Write units of changing `before` into `after`: (table, index).
    fn write_units(self, before: Option<&Item>, after: &Item) -> (u32, u32) {
        let size = |item: Option<&Item>| item.map_or(0, |i| item_size(&self.table_item(i)));
        let table = units(size(before).max(size(Some(after))));
        let index = match (before.and_then(|b| self.entry(b)), self.entry(after)) {
            (None, None) => 0,
            (None, Some((_, new))) => units(new),
            (Some((_, old)), None) => units(old),
            (Some((old_key, old)), Some((new_key, new))) if old_key == new_key => {
                if self.table_item(before.unwrap()) == self.table_item(after) { 0 } else { units(old.max(new)) }
            }
            (Some((_, old)), Some((_, new))) => units(old) + units(new),
        };
        (table, index)
    }
}

/// Reads items back without the interceptor.
struct Items {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Items {
    async fn get(&self, id: ImageId) -> Option<Item> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        output.item
    }
}

/// Units of one image's life, per layout.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Tally {
    table: u32,
    index: u32,
}

/// Runs `step` on the store and adds the units its one write per image cost under each layout.
struct Meter {
    store: DynamoMetadataStore,
    items: Items,
    log: WriteLog,
    sharded: Tally,
    unsharded: Tally,
    writes: Vec<String>,
    final_bytes: usize,
}

impl Meter {
    async fn step<F: std::future::Future<Output = ()>>(
        &mut self,
        id: ImageId,
        step: impl FnOnce(DynamoMetadataStore) -> F,
    ) {
        let before = self.items.get(id).await;
        self.log.take();
        step(self.store.clone()).await;
        let writes = self.log.take();
        assert_eq!(writes.len(), 1, "one write request per image per step: {writes:?}");
        let after = self.items.get(id).await.expect("the step left an item");
        for (layout, tally) in [(Layout::Sharded, &mut self.sharded), (Layout::Unsharded, &mut self.unsharded)] {
            let (table, index) = layout.write_units(before.as_ref(), &after);
            tally.table += table;
            tally.index += index;
        }
        self.final_bytes = item_size(&Layout::Sharded.table_item(&after));
        self.writes.extend(writes);
    }
}

async fn meter() -> Meter {
    let config = emulator::config(&emulator::url_from_env()).await;
    let table = emulator::unique_name("units");
    emulator::create_table(&config, &table).await.unwrap();
    let log = WriteLog::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config).interceptor(log.clone()).build(),
    );
    let items = Items { client: aws_sdk_dynamodb::Client::new(&config), table: table.clone() };
    Meter {
        store: DynamoMetadataStore::from_client(client, table),
        items,
        log,
        sharded: Tally::default(),
        unsharded: Tally::default(),
        writes: Vec::new(),
        final_bytes: 0,
    }
}

/// A record as the ingest function creates it for a 3 MB phone photo.
fn created(status: Status) -> MetadataRecord {
    let id = ImageId::generate();
    let source = Source {
        key: id.original_key("jpg"),
        bytes: 3_145_728,
        etag: "\"5d41402abc4b2a76b9719d911017c592\"".into(),
        content_type: "image/jpeg".into(),
    };
    let record = MetadataRecord::pending(id, source, "default".into(), 1_764_000_000_000);
    match status {
        Status::AwaitingUpload => MetadataRecord { status, expires_at: Some(1_764_000_900), ..record },
        _ => record,
    }
}

/// The record the processor writes for it with the default preset (three renditions).
fn done(record: &MetadataRecord) -> MetadataRecord {
    done_with(
        record,
        &[
            ("thumb", OutputFormat::Webp, 256, 256, 9_412),
            ("medium", OutputFormat::Jpeg, 768, 1024, 131_072),
            ("large", OutputFormat::Jpeg, 1536, 2048, 498_107),
        ],
    )
}

/// The record of a preset with eight renditions (a responsive-image ladder).
fn done_ladder(record: &MetadataRecord) -> MetadataRecord {
    let widths = [320, 480, 640, 768, 1024, 1280, 1600, 2048];
    let names = ["w320", "w480", "w640", "w768", "w1024", "w1280", "w1600", "w2048"];
    let ladder: Vec<_> = names
        .iter()
        .zip(widths)
        .map(|(&name, w)| (name, OutputFormat::Webp, w, w * 4 / 3, u64::from(w) * 90))
        .collect();
    done_with(record, &ladder)
}

fn done_with(record: &MetadataRecord, renditions: &[(&str, OutputFormat, u32, u32, u64)]) -> MetadataRecord {
    let renditions = renditions
        .iter()
        .map(|&(name, format, width, height, bytes)| RenditionRecord {
            name: name.into(),
            key: record.id.rendition_key(name, format),
            format,
            width,
            height,
            bytes,
        })
        .collect();
    MetadataRecord {
        status: Status::Done,
        original: Some(Original { format: InputFormat::Jpeg, width: 3024, height: 4032, orientation: 6 }),
        renditions,
        attempts: 1,
        started_ms: Some(record.created_ms + 5_210),
        finished_ms: Some(record.created_ms + 5_943),
        durations_ms: Some(StageDurations { decode: 61.25, resize: 18.5, watermark: 3.75, encode: 92.0, store: 121.5 }),
        expires_at: None,
        ..record.clone()
    }
}

fn failed(record: &MetadataRecord) -> MetadataRecord {
    MetadataRecord {
        status: Status::Failed,
        error: Some(ImageError::new(ErrorKind::Corrupt, "JPEG: premature end of data segment")),
        attempts: 1,
        started_ms: Some(record.created_ms + 5_210),
        finished_ms: Some(record.created_ms + 5_260),
        expires_at: None,
        ..record.clone()
    }
}

/// One image through `create`, `begin` and `finish`, metered.
async fn life(first: Status, end: fn(&MetadataRecord) -> MetadataRecord) -> Meter {
    let mut meter = meter().await;
    let record = created(first);
    let id = record.id;
    let slot = record.clone();
    match first {
        Status::AwaitingUpload => meter.step(id, |store| async move { store.reserve(&[slot]).await.unwrap() }).await,
        _ => meter.step(id, |store| async move { store.accept(&slot, "").await.unwrap() }).await,
    }
    meter
        .step(id, |store| async move {
            store.begin(id, record.created_ms + 5_210).await.unwrap();
        })
        .await;
    let last = end(&record);
    meter.step(id, |store| async move { store.finish(&[last]).await.unwrap() }).await;
    meter
}

#[tokio::test]
async fn an_image_costs_seven_write_units_plus_its_final_record() {
    let cases = [
        ("direct upload, DONE (default preset)", life(Status::Pending, done).await),
        ("presigned upload, DONE (default preset)", life(Status::AwaitingUpload, done).await),
        ("direct upload, FAILED", life(Status::Pending, failed).await),
        ("direct upload, DONE (8 renditions)", life(Status::Pending, done_ladder).await),
    ];
    println!("| life | writes | final item | sharded, keys + error: table + index | unsharded, ALL: table + index |");
    println!("|---|---|---:|---:|---:|");
    for (name, meter) in &cases {
        let (s, u) = (meter.sharded, meter.unsharded);
        println!(
            "| {name} | {} | {} B | {} + {} = {} | {} + {} = {} |",
            meter.writes.join(", "),
            meter.final_bytes,
            s.table,
            s.index,
            s.table + s.index,
            u.table,
            u.index,
            u.table + u.index
        );
        let record_units = units(meter.final_bytes);
        // Created (1), begun (1), finished (R) on the table; the index entry put at creation,
        // moved by `begin` (delete + put) and by `finish` (delete + put), one unit each.
        assert_eq!(s, Tally { table: 2 + record_units, index: 5 }, "{name}");
        // Before: the index held the whole item, so the final entry cost R too: 6 + 2R.
        assert_eq!(u, Tally { table: 2 + record_units, index: 4 + record_units }, "{name}");
    }
    // The default preset's record stays under 1 KB: 8 units either way (the gain there is the
    // ceiling, not the units); a record over 1 KB saves R - 1 units.
    assert!(cases[0].1.final_bytes < 1024, "{} B", cases[0].1.final_bytes);
    assert!(units(cases[3].1.final_bytes) >= 2, "{} B", cases[3].1.final_bytes);
    assert_eq!(cases[0].1.writes, ["PutItem", "UpdateItem", "PutItem"]);
    assert_eq!(
        cases[1].1.writes,
        ["BatchWriteItem", "UpdateItem", "PutItem"],
        "no PENDING write on the presigned path"
    );
}

#[test]
fn sizes_follow_dynamodbs_rules() {
    // Worked examples: "id" + 26 characters; 1764000000000 has 4 significant digits: 3 bytes.
    let item: Item = HashMap::from([
        ("id".into(), AttributeValue::S("01JD0000000000000000000000".into())),
        ("created_ms".into(), AttributeValue::N("1764000000000".into())),
        ("m".into(), AttributeValue::M(HashMap::from([("k".into(), AttributeValue::S("vv".into()))]))),
    ]);
    assert_eq!(item_size(&item), (2 + 26) + (10 + 3) + (1 + 3 + 1 + 2 + 1));
    assert_eq!(units(1024), 1);
    assert_eq!(units(1025), 2);
}
