//! Fault injection for the AWS adapters: an SDK interceptor that replaces real responses from
//! the emulator with errors (throttling, 5xx, S3 SlowDown) or with a partial `BatchWriteItem`
//! result (`UnprocessedItems`), in order, one per matching call. moto never throttles and never
//! leaves items unprocessed, so this is how the retry paths are exercised.

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One injected failure.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The next call answers this HTTP status with this error code (its retry gets through).
    Status(u16, &'static str),
    /// Every attempt of the next call answers this status and code: the SDK's retries run out.
    Persistent(u16, &'static str),
    /// The next `BatchWriteItem` answers that half of its items (rounded up) were not written.
    Unprocessed,
}

impl Fault {
    /// An error response.
    pub fn status(status: u16, code: &'static str) -> Self {
        Fault::Status(status, code)
    }
}

#[derive(Debug, Default)]
struct State {
    faults: VecDeque<Fault>,
    injected: usize,
    batch_sizes: Vec<usize>,
}

/// The injector; clones share their state.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<State>>);

/// What the request phase decided for this call.
#[derive(Debug, Clone)]
struct Planned {
    fault: Fault,
    dynamodb: bool,
    request_items: Option<serde_json::Value>,
    // The bag outlives the attempt: serve the fault to the first attempt only.
    served: Arc<std::sync::atomic::AtomicBool>,
}

impl Storable for Planned {
    type Storer = StoreReplace<Self>;
}

impl Faults {
    /// Serves `faults` in order.
    pub fn new(faults: impl IntoIterator<Item = Fault>) -> Self {
        Faults(Arc::new(Mutex::new(State { faults: faults.into_iter().collect(), ..State::default() })))
    }

    /// An S3 client (path-style, as for any emulator) with this injector.
    pub fn s3(&self, config: &SdkConfig) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(config).force_path_style(true).interceptor(self.clone()).build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// A DynamoDB client with this injector.
    pub fn dynamodb(&self, config: &SdkConfig) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(config).interceptor(self.clone()).build(),
        )
    }

    /// Faults served so far.
    pub fn injected(&self) -> usize {
        self.0.lock().unwrap().injected
    }

    /// Items per `BatchWriteItem` call seen so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.0.lock().unwrap().batch_sizes.clone()
    }
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "FaultInjection"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default().to_owned();
        let dynamodb = target.starts_with("DynamoDB_");
        let batch_write = target.ends_with(".BatchWriteItem");
        let write = batch_write || target.ends_with(".PutItem");
        let body: Option<serde_json::Value> =
            request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).filter(|_| batch_write);
        let mut state = self.0.lock().unwrap();
        if let Some(items) = body.as_ref().and_then(|b| b["RequestItems"].as_object()) {
            state.batch_sizes.push(items.values().filter_map(|v| v.as_array()).map(Vec::len).sum());
        }
        // DynamoDB errors go to BatchWriteItem and PutItem calls only (partial answers to
        // BatchWriteItem); S3 faults to any S3 call.
        // One fault per operation (not per attempt), so the SDK's retry of it gets through.
        if cfg.load::<Planned>().is_some() {
            return Ok(());
        }
        let applies = match state.faults.front() {
            Some(Fault::Unprocessed) => batch_write,
            Some(Fault::Status(..) | Fault::Persistent(..)) => !dynamodb || write,
            None => false,
        };
        if applies {
            let fault = state.faults.pop_front().expect("checked above");
            state.injected += 1;
            cfg.interceptor_state().store_put(Planned {
                fault,
                dynamodb,
                request_items: body.map(|b| b["RequestItems"].clone()),
                served: Arc::default(),
            });
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(planned) = cfg.load::<Planned>().cloned() else { return Ok(()) };
        let persistent = matches!(planned.fault, Fault::Persistent(..));
        if planned.served.swap(true, std::sync::atomic::Ordering::SeqCst) && !persistent {
            return Ok(());
        }
        let response = context.response_mut();
        match planned.fault {
            Fault::Status(status, code) | Fault::Persistent(status, code) => {
                *response.status_mut() = StatusCode::try_from(status)?;
                let body = if planned.dynamodb {
                    serde_json::json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": "injected"})
                        .to_string()
                } else {
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
                    )
                };
                *response.body_mut() = SdkBody::from(body);
            }
            Fault::Unprocessed => {
                // The emulator wrote every item; claim half were not, as DynamoDB may under load.
                let mut unprocessed = serde_json::Map::new();
                if let Some(tables) = planned.request_items.as_ref().and_then(|v| v.as_object()) {
                    for (table, requests) in tables {
                        let requests = requests.as_array().cloned().unwrap_or_default();
                        let half = requests.len().div_ceil(2);
                        unprocessed.insert(table.clone(), serde_json::Value::Array(requests[..half].to_vec()));
                    }
                }
                *response.body_mut() = SdkBody::from(serde_json::json!({"UnprocessedItems": unprocessed}).to_string());
            }
        }
        Ok(())
    }
}
