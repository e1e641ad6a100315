//! The state machine (`infra/statemachine/process-images.asl.json`) and the local workflow runner
//! share one policy (`imgpipe_core::policy`): the Map's concurrency and the processor Task's
//! Retry numbers must equal it, so the two modes cannot drift. Also pins the payload each Map
//! iteration hands the processor (`ChunkInput`) and what the Task passes on (its payload).

use imgpipe_core::policy::{
    EXPRESS_LIMIT, MAP_MAX_CONCURRENCY, MAX_CHUNKS_PER_WORKFLOW, MAX_REDRIVES, REDRIVE_DELAY, RETRY,
    worst_case_execution,
};
use serde_json::{Value, json};
use std::time::Duration;

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

/// What a chunk is sent back to the queue for once its Retry is spent: the retried errors (lack
/// of capacity, not the images) and a timeout. Not `PermanentError`, nor any other failure.
const REDRIVEN: [&str; 7] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "RetryableError",
    "States.Timeout",
    "Sandbox.Timedout",
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
    // `ChunkInput` is {batch_id, attempt, images}: the Map builds it from the execution's batch
    // id and attempt and the current chunk, and the Task passes it unchanged as the Lambda payload.
    let definition = definition();
    assert_eq!(
        chunk_map(&definition)["ItemSelector"],
        json!({"batch_id.$": "$.batch_id", "attempt.$": "$.attempt", "images.$": "$$.Map.Item.Value"})
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

/// The state `name` of the chunk Map's iteration.
fn iteration_state(definition: &Value, name: &str) -> Value {
    let state = chunk_map(definition)["ItemProcessor"]["States"][name].clone();
    assert!(state.is_object(), "no state {name} in the chunk Map");
    state
}

#[test]
fn a_chunk_short_of_capacity_goes_back_to_the_queue_within_its_budget() {
    let definition = definition();
    let task = processor_task(&definition);
    let catchers = task["Catch"].as_array().expect("the processor Task has a Catch");
    assert_eq!(catchers.len(), 2, "capacity first, then everything else");
    let mut caught: Vec<&str> =
        catchers[0]["ErrorEquals"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    caught.sort_unstable();
    let mut want = REDRIVEN.to_vec();
    want.sort_unstable();
    assert_eq!(caught, want);
    assert!(RETRIED.iter().all(|e| want.contains(e)), "every retried error is re-driven when retries run out");
    assert!(!caught.contains(&"PermanentError") && !caught.contains(&"States.ALL"));
    assert_eq!(catchers[0]["ResultPath"], "$.error");

    // The budget: a Choice on the attempt, the policy's number.
    let choice = iteration_state(&definition, catchers[0]["Next"].as_str().unwrap());
    assert_eq!(choice["Type"], "Choice");
    let rule = &choice["Choices"][0];
    assert_eq!(rule["Variable"], "$.attempt");
    assert_eq!(rule["NumericLessThan"].as_u64(), Some(u64::from(MAX_REDRIVES)));
    // Within it: the envelope imgpipe_core::event::Redrive parses, attempt + 1, sent with the delay.
    let prepare = iteration_state(&definition, rule["Next"].as_str().unwrap());
    assert_eq!(
        prepare["Parameters"],
        json!({"imgpipe_redrive": {"attempt.$": "States.MathAdd($.attempt, 1)", "images.$": "$.images", "reason.$": "$.error.Error"}})
    );
    let send = iteration_state(&definition, prepare["Next"].as_str().unwrap());
    assert_eq!(send["Resource"], "arn:aws:states:::sqs:sendMessage");
    assert_eq!(send["Parameters"]["QueueUrl"], "${IngestQueueUrl}");
    assert_eq!(send["Parameters"]["DelaySeconds"].as_u64(), Some(REDRIVE_DELAY.as_secs()));
    assert!(REDRIVE_DELAY.as_secs() <= 900, "SQS DelaySeconds is at most 900");
    assert_eq!(
        send["Parameters"]["MessageBody.$"],
        format!("States.JsonToString({})", prepare["ResultPath"].as_str().unwrap())
    );
    // A queue that refuses the message leaves the records for the sweeper, never FAILED.
    let refused = iteration_state(&definition, send["Catch"][0]["Next"].as_str().unwrap());
    assert_eq!(refused["End"], true);
    // Past it: FAILED, saying why.
    let out = iteration_state(&definition, choice["Default"].as_str().unwrap());
    assert!(out["Parameters"]["message.$"].as_str().unwrap().contains("still throttled after"), "{out}");
    assert_eq!(out["Next"], "MarkChunkFailed");
}

#[test]
fn a_chunk_that_still_fails_is_caught() {
    let definition = definition();
    let task = processor_task(&definition);
    let catchers = task["Catch"].as_array().expect("the processor Task has a Catch");
    assert_eq!(catchers.last().unwrap()["ErrorEquals"], json!(["States.ALL"]));
    assert_eq!(catchers.last().unwrap()["Next"], "DescribeFailure");
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

/// The time budget: the template's largest processor timeout, with the ASL's Retry (equal to the
/// policy, checked above) and the policy's chunking, fits Express's 5 minutes.
#[test]
fn the_worst_execution_fits_express_with_the_templates_largest_timeout() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let timeout = &template["Parameters"]["ProcessorTimeout"];
    let (default, max) = (timeout["Default"].as_u64().unwrap(), timeout["MaxValue"].as_u64().unwrap());
    assert!(default <= max);
    let worst = worst_case_execution(Duration::from_secs(max));
    assert!(worst <= EXPRESS_LIMIT, "ProcessorTimeout up to {max} s: worst case {worst:?} > {EXPRESS_LIMIT:?}");
    let map = chunk_map(&definition());
    assert!(MAX_CHUNKS_PER_WORKFLOW as u64 <= map["MaxConcurrency"].as_u64().unwrap(), "every chunk in one wave");
    // The function's timeout is the parameter, nothing else.
    let function = &template["Resources"]["ProcessorFunction"]["Properties"];
    let serde_yaml::Value::Tagged(timeout) = &function["Timeout"] else { panic!("Timeout is not a !Ref") };
    assert_eq!((timeout.tag.to_string().as_str(), timeout.value.as_str()), ("!Ref", Some("ProcessorTimeout")));
    assert!(
        template["Resources"]["ProcessImagesStateMachine"]["Properties"]["Type"].as_str() == Some("EXPRESS"),
        "the 5-minute limit is Express's"
    );
}
