#!/usr/bin/env python3
"""Runs infra/statemachine/process-images.asl.json on a moto server (offline).

Run by scripts/infra-check with the moto venv of scripts/tools (the Rust emulated-stack test
covers the happy path; only this one reaches the Catch). Needs `moto[server]==5.2.5` and boto3
in the running interpreter:

    ~/.cache/imgpipe-tools/moto/bin/python infra/tests/moto_asl_check.py

Checks: (1) each processor invocation gets exactly {batch_id, attempt, images: <one chunk>} and
the execution output is one entry per chunk; (2) when the processor task fails, the Catch path
marks the chunk's unfinished records FAILED through dynamodb:updateItem, keeps the rest of each
record, leaves DONE and FAILED records alone, and removes `expires_at` (DynamoDB's TTL would
delete a FAILED record that kept a slot's expiry); (3) backpressure: with the processor Task
swapped for a Parallel state whose branch fails with Lambda.TooManyRequestsException (its
Retry and Catch kept, the intervals and the queue delay shrunk), the chunk comes back on the
ingest queue as an imgpipe_redrive message with attempt + 1, after the delay, and its records
stay PENDING/PROCESSING; at the budget (MAX_REDRIVES, read from core/src/policy.rs) the records
end FAILED internal "still throttled after N attempts" and nothing is queued; a PermanentError
fails them at once, nothing queued. Takes about 10 s. Set MOTO_LOG=FILE to keep the server's log.
"""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import boto3

from metadata_table import create_table_args

ASL = pathlib.Path(__file__).resolve().parents[1] / "statemachine" / "process-images.asl.json"
POLICY_RS = pathlib.Path(__file__).resolve().parents[2] / "core" / "src" / "policy.rs"
MAX_REDRIVES = int(re.search(r"pub const MAX_REDRIVES: u32 = (\d+);", POLICY_RS.read_text()).group(1))
REGION = "us-east-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    # The moto_server beside this interpreter: another one on PATH may be an older moto.
    beside = pathlib.Path(sys.executable).parent / "moto_server"
    exe = str(beside) if beside.exists() else shutil.which("moto_server")
    # MOTO_PORT: where moto's own service integrations (Lambda, DynamoDB tasks) call back to.
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], env={**os.environ, "MOTO_PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=open(os.environ.get("MOTO_LOG", os.devnull), "w"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise SystemExit("moto_server did not start")
    # Before any state machine exists: executions only run in this mode.
    config = json.dumps({"stepfunctions": {"execute_state_machine": True},
                         "lambda": {"use_docker": False}}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/config", data=config, method="POST"))
    return proc, url


def client(service, url):
    return boto3.client(service, endpoint_url=url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def definition(table, function_arn, queue_url):
    text = ASL.read_text()
    text = text.replace("${MetadataTable}", table).replace("${ProcessorFunctionArn}", function_arn)
    text = text.replace("${IngestQueueUrl}", queue_url)
    assert "${" not in text, "an unsubstituted placeholder is left"
    return text


def failing(text, error, cause):
    """The definition with the processor Task swapped for a Parallel whose one branch fails with
    `error` (moto's Lambda only echoes): the Task's Retry and Catch kept, the retry intervals and
    the re-drive's DelaySeconds shrunk to 1 s so the test runs in seconds."""
    d = json.loads(text)
    states = d["States"]["ProcessChunks"]["ItemProcessor"]["States"]
    task = states["Process"]
    states["Process"] = {
        "Type": "Parallel",
        "Branches": [{"StartAt": "Throttled", "States": {"Throttled": {"Type": "Fail", "Error": error, "Cause": cause}}}],
        "Retry": [dict(r, IntervalSeconds=1, MaxAttempts=1, MaxDelaySeconds=1) for r in task["Retry"]],
        "Catch": task["Catch"],
        "End": True,
    }
    sends = [s for s in states.values() if s.get("Resource") == "arn:aws:states:::sqs:sendMessage"]
    assert len(sends) == 1, "one re-drive Task"
    sends[0]["Parameters"]["DelaySeconds"] = 1
    return json.dumps(d)


def receive_all(sqs, url, wait=0):
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get("Messages", [])
    for m in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in got]


def run(sfn, role_arn, name, text, execution_input):
    machine = sfn.create_state_machine(name=name, definition=text, roleArn=role_arn, type="EXPRESS")
    arn = machine["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=f"{name}-run", input=json.dumps(execution_input))
    deadline = time.time() + 60
    while True:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            return described
        if time.time() > deadline:
            raise AssertionError(f"{name}: still RUNNING after 60 s")
        time.sleep(0.2)


def obj(bucket, image_id):
    # Keys with a spread prefix (originals/{spread}/{id}.{ext}), except every third in the layout
    # from before prefixes (originals/{id}.{ext}): the Catch must find the id in both.
    spread = "" if int(image_id[-1]) % 3 == 0 else "ab12/"
    return {"bucket": bucket, "key": f"originals/{spread}{image_id}.jpg", "size": 3, "etag": f"etag-{image_id}"}


SHARD = 7
STATUS_CODES = {"AWAITING_UPLOAD": 1, "PENDING": 2, "PROCESSING": 3, "DONE": 4, "FAILED": 5}


def index_attributes(status):
    """The by-status index key the Rust code writes (adapters::aws::dynamo::status_shard)."""
    return {"index_shard": {"N": str(SHARD)}, "status_shard": {"N": str(100 * STATUS_CODES[status] + SHARD)}}


def main():
    proc, url = start_moto()
    try:
        iam, lam, ddb, sfn, sqs = (client(s, url) for s in ("iam", "lambda", "dynamodb", "stepfunctions", "sqs"))
        queue_url = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        role_arn = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        table = "imgpipe-metadata"
        ddb.create_table(**create_table_args(table))
        function_arn = lam.create_function(
            FunctionName="processor", Runtime="provided.al2023", Role=role_arn, Handler="bootstrap",
            Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18})["FunctionArn"]

        # 1. Happy path: moto's Lambda echoes its payload, so the output shows what the processor gets.
        ids = [f"01JD{n:022d}" for n in range(5)]
        chunks = [[obj("originals-bkt", i) for i in ids[:3]], [obj("originals-bkt", i) for i in ids[3:]]]
        started = time.time()
        done = run(sfn, role_arn, "happy", definition(table, function_arn, queue_url),
                   {"batch_id": "b-1", "attempt": 0, "chunks": chunks})
        assert done["status"] == "SUCCEEDED", done
        output = json.loads(done["output"])
        assert output == [{"batch_id": "b-1", "attempt": 0, "images": chunk} for chunk in chunks], output
        print(f"happy path: SUCCEEDED in {time.time() - started:.2f} s; processor payloads = "
              f"{json.dumps(output)[:160]}...")

        # 2. Catch path: the task cannot invoke the function; PENDING records become FAILED, DONE stays.
        # The first is a presigned upload's slot (S3 PUT, event, no begin yet): it has expires_at.
        for image_id, status in zip(ids, ["AWAITING_UPLOAD", "PROCESSING", "DONE", "PENDING", "FAILED"]):
            item = {
                "id": {"S": image_id}, "status": {"S": status}, "created_ms": {"N": "1700000000000"}, "created_key": {"S": "001700000000000#" + image_id},
                "source": {"M": {"key": {"S": f"originals/{image_id}.jpg"}, "bytes": {"N": "3"}}},
                **index_attributes(status)}
            if status == "AWAITING_UPLOAD":
                item["expires_at"] = {"N": "1700000900"}
            ddb.put_item(TableName=table, Item=item)
        # moto's Lambda cannot raise a function error on request (it echoes, even for a function
        # that does not exist), except one: a response over 6 MB is answered as
        # Function.ResponseSizeTooLarge. Queue one such response per chunk; that error is not in
        # the Retry list, so it goes straight to the Catch.
        oversized = json.dumps({"results": ["x" * 6_100_000] * len(chunks), "region": REGION}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"{url}/moto-api/static/lambda-simple/response", data=oversized, method="POST"))
        started = time.time()
        caught = run(sfn, role_arn, "catch", definition(table, function_arn, queue_url),
                     {"batch_id": "b-2", "attempt": 0, "chunks": chunks})
        print(f"catch path: execution {caught['status']} in {time.time() - started:.2f} s")
        print("catch path output:", caught.get("output") or caught.get("error"), caught.get("cause", ""))
        statuses = {}
        for image_id in ids:
            item = ddb.get_item(TableName=table, Key={"id": {"S": image_id}})["Item"]
            statuses[image_id] = (item["status"]["S"], item.get("error", {}).get("M"), "source" in item,
                                  "expires_at" in item)
            assert item["status_shard"] == index_attributes(item["status"]["S"])["status_shard"], item
            assert item["index_shard"] == {"N": str(SHARD)}, item
        for image_id, seen in statuses.items():
            print("  record", image_id, seen)
        assert caught["status"] == "SUCCEEDED", caught
        expected = ["FAILED", "FAILED", "DONE", "FAILED", "FAILED"]
        assert [statuses[i][0] for i in ids] == expected, statuses
        assert statuses[ids[2]][1] is None, "a DONE record must not get an error"
        assert all(statuses[i][2] for i in ids), "UpdateItem must keep the rest of the record"
        # DynamoDB's TTL deletes any item whose expires_at has passed, whatever its status.
        assert not any(statuses[i][3] for i in ids), "a FAILED record must not keep expires_at"
        failed_key = {":key": {"N": str(100 * STATUS_CODES["FAILED"] + SHARD)}}
        listed = ddb.query(TableName=table, IndexName="by-status", KeyConditionExpression="status_shard = :key",
                           ExpressionAttributeValues=failed_key)["Items"]
        assert sorted(i["id"]["S"] for i in listed) == sorted([ids[0], ids[1], ids[3], ids[4]]), listed
        results = json.loads(caught["output"])
        assert [len(r["results"]) for r in results] == [3, 2], results
        assert results[0]["results"][0]["status"] == "FAILED" and results[0]["results"][0]["id"] == ids[0], results
        assert results[0]["results"][2] == {"id": ids[2], "unchanged": True}, results
        assert receive_all(sqs, queue_url) == [], "a failure other than capacity re-drives nothing"

        # 3. Backpressure. Fresh records: one PENDING (never begun), one PROCESSING (begun, then throttled).
        def records(prefix, statuses):
            made = [f"01JE{prefix}{n:020d}" for n in range(len(statuses))]
            for image_id, status in zip(made, statuses):
                ddb.put_item(TableName=table, Item={
                    "id": {"S": image_id}, "status": {"S": status}, "created_ms": {"N": "1700000000000"},
                    "created_key": {"S": "001700000000000#" + image_id}, "attempts": {"N": "1"},
                    "source": {"M": {"key": {"S": f"originals/{image_id}.jpg"}, "bytes": {"N": "3"}}},
                    **index_attributes(status)})
            return made

        def state(image_id):
            item = ddb.get_item(TableName=table, Key={"id": {"S": image_id}})["Item"]
            return item["status"]["S"], item.get("error", {}).get("M", {}).get("message", {}).get("S")

        throttled = failing(definition(table, function_arn, queue_url), "Lambda.TooManyRequestsException",
                            "Rate Exceeded.")
        open_ids = records("10", ["PENDING", "PROCESSING"])
        chunk = [obj("originals-bkt", i) for i in open_ids]
        started = time.time()
        redriven = run(sfn, role_arn, "throttled", throttled, {"batch_id": "b-3", "attempt": 1, "chunks": [chunk]})
        assert redriven["status"] == "SUCCEEDED", redriven
        assert json.loads(redriven["output"]) == [
            {"redriven": 2, "reason": "Lambda.TooManyRequestsException"}], redriven["output"]
        assert [state(i)[0] for i in open_ids] == ["PENDING", "PROCESSING"], "a throttled chunk fails nothing"
        assert receive_all(sqs, queue_url) == [], "the re-drive waits out its DelaySeconds"
        time.sleep(1.5)
        messages = receive_all(sqs, queue_url, wait=2)
        assert messages == [{"imgpipe_redrive": {"attempt": 2, "images": chunk,
                                                 "reason": "Lambda.TooManyRequestsException"}}], messages
        print(f"throttled: re-driven with attempt 2 after the delay ({time.time() - started:.2f} s); records",
              [state(i)[0] for i in open_ids])

        spent_ids = records("20", ["PENDING", "PROCESSING", "DONE"])
        spent = run(sfn, role_arn, "spent", throttled,
                    {"batch_id": "b-4", "attempt": MAX_REDRIVES, "chunks": [[obj("originals-bkt", i) for i in spent_ids]]})
        assert spent["status"] == "SUCCEEDED", spent
        ends = [state(i) for i in spent_ids]
        want = f"still throttled after {MAX_REDRIVES + 1} attempts: Lambda.TooManyRequestsException"
        assert ends == [("FAILED", want), ("FAILED", want), ("DONE", None)], ends
        assert receive_all(sqs, queue_url, wait=2) == [], "nothing queued past the budget"
        print(f"budget spent at attempt {MAX_REDRIVES}: records {ends}")

        permanent_ids = records("30", ["PENDING", "PROCESSING"])
        permanent = run(sfn, role_arn, "permanent",
                        failing(definition(table, function_arn, queue_url), "PermanentError", "preset missing"),
                        {"batch_id": "b-5", "attempt": 0, "chunks": [[obj("originals-bkt", i) for i in permanent_ids]]})
        assert permanent["status"] == "SUCCEEDED", permanent
        ends = [state(i) for i in permanent_ids]
        assert ends == [("FAILED", "processing failed: PermanentError: preset missing")] * 2, ends
        assert receive_all(sqs, queue_url, wait=2) == [], "a permanent error re-drives nothing"
        print(f"permanent error: records {ends}")
        print("ok")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
