//! The state machine (`infra/statemachine/process-images.asl.json`) and the local workflow runner
//! share one policy (`imgpipe_core::policy`): the Map's concurrency and the processor Task's
//! Retry numbers must equal it, so the two modes cannot drift. Also pins the payload each Map
//! iteration hands the processor (`ChunkInput`) and what the Task passes on (its payload).

use imgpipe_core::policy::{MAP_MAX_CONCURRENCY, RETRY};
use serde_json::{Value, json};

const ASL: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/statemachine/process-images.asl.json"));

/// The errors the processor Task retries: Lambda's own transient failures and the processor's
/// retryable failures, which it reports with this `errorType`.
const RETRIED: [&str; 5] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "RetryableError",
];

fn definition() -> Value {
    serde_json::from_str(ASL).expect("the state machine definition is JSON")
}

/// Every state of `states` and of the Maps (and Parallels) nested in it, with its name.
fn all_states(states: &Value) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (name, state) in states.as_object().expect("States is an object") {
        found.push((name.clone(), state.clone()));
        for nested in [&state["ItemProcessor"]["States"], &state["Iterator"]["States"]] {
            if nested.is_object() {
                found.extend(all_states(nested));
            }
        }
        for branch in state["Branches"].as_array().into_iter().flatten() {
            found.extend(all_states(&branch["States"]));
        }
    }
    found
}

/// The one Map over the execution's chunks.
fn chunk_map(definition: &Value) -> Value {
    let maps: Vec<_> =
        all_states(&definition["States"]).into_iter().filter(|(_, s)| s["ItemsPath"] == "$.chunks").collect();
    assert_eq!(maps.len(), 1, "exactly one Map iterates over $.chunks");
    maps[0].1.clone()
}

/// The one Task that invokes the processor.
fn processor_task(definition: &Value) -> Value {
    let tasks: Vec<_> = all_states(&definition["States"])
        .into_iter()
        .filter(|(_, s)| s["Resource"] == "arn:aws:states:::lambda:invoke")
        .collect();
    assert_eq!(tasks.len(), 1, "exactly one Task invokes a Lambda");
    tasks[0].1.clone()
}

#[test]
fn map_concurrency_is_the_policy() {
    let map = chunk_map(&definition());
    assert_eq!(map["Type"], "Map");
    assert_eq!(map["MaxConcurrency"].as_u64(), Some(MAP_MAX_CONCURRENCY as u64));
    assert_eq!(map["ItemProcessor"]["ProcessorConfig"]["Mode"], "INLINE");
}

#[test]
fn each_iteration_gets_exactly_a_chunk_input() {
    // `ChunkInput` is {batch_id, images}: the Map builds it from the execution's batch id and
    // the current chunk, and the Task passes it unchanged as the Lambda payload.
    let definition = definition();
    assert_eq!(
        chunk_map(&definition)["ItemSelector"],
        json!({"batch_id.$": "$.batch_id", "images.$": "$$.Map.Item.Value"})
    );
    let task = processor_task(&definition);
    assert_eq!(task["Parameters"], json!({"FunctionName": "${ProcessorFunctionArn}", "Payload.$": "$"}));
    assert_eq!(task["OutputPath"], "$.Payload", "an iteration's output is the processor's own output");
}

#[test]
fn processor_retry_is_the_policy() {
    let task = processor_task(&definition());
    let retriers = task["Retry"].as_array().expect("the processor Task has a Retry");
    assert_eq!(retriers.len(), 1, "one retrier, so every retried error gets the same policy");
    let retry = &retriers[0];
    let errors: Vec<&str> =
        retry["ErrorEquals"].as_array().unwrap().iter().map(|e| e.as_str().expect("error names are strings")).collect();
    let mut want = RETRIED.to_vec();
    let mut got = errors.clone();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "the retried errors");
    // ASL's MaxAttempts counts retries after the first attempt, as RetryPolicy::max_attempts does.
    assert_eq!(retry["MaxAttempts"].as_u64(), Some(u64::from(RETRY.max_attempts)));
    assert_eq!(retry["IntervalSeconds"].as_u64(), Some(RETRY.interval.as_secs()));
    assert_eq!(retry["BackoffRate"].as_f64(), Some(RETRY.backoff_rate));
    assert_eq!(retry["MaxDelaySeconds"].as_u64(), Some(RETRY.max_delay.as_secs()));
    // The local runner sleeps a uniform random fraction of each delay: full jitter.
    assert_eq!(retry["JitterStrategy"], "FULL");
}

#[test]
fn a_chunk_that_still_fails_is_caught() {
    let definition = definition();
    let task = processor_task(&definition);
    let catchers = task["Catch"].as_array().expect("the processor Task has a Catch");
    assert_eq!(catchers.len(), 1);
    assert_eq!(catchers[0]["ErrorEquals"], json!(["States.ALL"]));
    // The catch path records FAILED with UpdateItem (only status and error change) and never
    // overwrites a final record.
    let updates: Vec<_> = all_states(&definition["States"])
        .into_iter()
        .filter(|(_, s)| s["Resource"] == "arn:aws:states:::dynamodb:updateItem")
        .collect();
    assert_eq!(updates.len(), 1, "one DynamoDB updateItem Task marks images FAILED");
    let update = &updates[0].1;
    assert_eq!(update["Parameters"]["TableName"], "${MetadataTable}");
    assert_eq!(update["Parameters"]["ExpressionAttributeValues"][":failed"], json!({"S": "FAILED"}));
    assert_eq!(update["Parameters"]["ExpressionAttributeValues"][":error"]["M"]["kind"], json!({"S": "internal"}));
    let condition = update["Parameters"]["ConditionExpression"].as_str().unwrap();
    assert!(condition.starts_with("#status IN ("), "{condition}");
    assert_eq!(update["Catch"][0]["ErrorEquals"], json!(["DynamoDB.ConditionalCheckFailedException"]));
}
