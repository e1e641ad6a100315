"""Least privilege, pinned: every IAM statement of infra/template.yaml, exactly.

Each role's Allow statements must equal the sets below (actions and resources, no more, no less),
each function and the state machine must use its own explicit role (no SAM `Policies`, no managed
policies), and no Allow anywhere may use a wildcard action or a `*` resource except the one Step
Functions log-delivery statement AWS requires it for. The `test_widened_copy_fails` cases widen a
copy of the template in the ways a careless edit would and check each is caught.

Run by scripts/infra-check (pytest in the cfn-lint venv: cfnlint.decode reads the !Ref/!Sub tags).
"""

import copy
import pathlib
import re

import pytest
from cfnlint.decode import decode

INFRA = pathlib.Path(__file__).resolve().parents[1]
TEMPLATE = INFRA / "template.yaml"
POLICY_RS = INFRA.parent / "core" / "src" / "policy.rs"

LOGS = ("logs:CreateLogStream", "logs:PutLogEvents")
# X-Ray active tracing (Globals.Function.Tracing, the state machine's Tracing): AWS accepts only
# Resource "*" for these actions, so each role names them explicitly and with nothing else.
XRAY_LAMBDA = ("xray:PutTelemetryRecords", "xray:PutTraceSegments")
XRAY_STATES = ("xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords",
               "xray:PutTraceSegments")
TABLE = "!GetAtt MetadataTable.Arn"
# The presets file and its logos: read (GetObject, which covers HEAD) by ingest and processor only.
CONFIG_OBJECTS = "!Sub ${ConfigBucket.Arn}/*"
PRESETS_ENV = {"CONFIG_BUCKET", "PRESETS_KEY", "PRESETS_REFRESH_SECONDS"}

# role -> (trusted service, [(actions, resources), ...]); order does not matter, duplicates do.
ROLES = {
    "IngestRole": ("lambda.amazonaws.com", [
        (LOGS, ["!GetAtt IngestLogGroup.Arn"]),
        (XRAY_LAMBDA, ["*"]),
        (["s3:PutObject"], ["!Sub ${OriginalsBucket.Arn}/originals/*"]),
        (["s3:GetObject"], ["!Sub ${ProcessedBucket.Arn}/processed/*"]),
        (["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
         [TABLE, "!Sub ${MetadataTable.Arn}/index/by-status"]),
        (["dynamodb:BatchWriteItem"], [TABLE]),
        (["dynamodb:BatchGetItem"], [TABLE]),
        (["secretsmanager:GetSecretValue"], ["!Ref ApiKeySecret"]),
        (["s3:GetObject"], [CONFIG_OBJECTS]),
    ]),
    "OrchestratorRole": ("lambda.amazonaws.com", [
        (LOGS, ["!GetAtt OrchestratorLogGroup.Arn"]),
        (XRAY_LAMBDA, ["*"]),
        (["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"], ["!GetAtt IngestQueue.Arn"]),
        (["states:StartExecution"], ["!Ref ProcessImagesStateMachine"]),
        (["dynamodb:BatchGetItem"], [TABLE]),
    ]),
    "ProcessorRole": ("lambda.amazonaws.com", [
        (LOGS, ["!GetAtt ProcessorLogGroup.Arn"]),
        (XRAY_LAMBDA, ["*"]),
        (["s3:GetObject"], ["!Sub ${OriginalsBucket.Arn}/originals/*"]),
        (["s3:PutObject"], ["!Sub ${ProcessedBucket.Arn}/processed/*"]),
        (["s3:GetObject"], [CONFIG_OBJECTS]),
        (["dynamodb:PutItem", "dynamodb:UpdateItem"], [TABLE]),
    ]),
    # Lists open records through the status index (and reads the listed records), counts sweeps
    # with conditional updates, and re-drives through the ingest queue: no GetItem, no Scan, no
    # PutItem.
    "SweeperRole": ("lambda.amazonaws.com", [
        (LOGS, ["!GetAtt SweeperLogGroup.Arn"]),
        (XRAY_LAMBDA, ["*"]),
        (["dynamodb:Query"], ["!Sub ${MetadataTable.Arn}/index/by-status"]),
        (["dynamodb:BatchGetItem"], [TABLE]),
        (["dynamodb:UpdateItem"], [TABLE]),
        (["sqs:SendMessage"], ["!GetAtt IngestQueue.Arn"]),
    ]),
    "StateMachineRole": ("states.amazonaws.com", [
        (["lambda:InvokeFunction"], ["!GetAtt ProcessorFunction.Arn"]),
        (["dynamodb:UpdateItem"], [TABLE]),
        # A chunk short of capacity goes back to the ingest queue, and to no other.
        (["sqs:SendMessage"], ["!GetAtt IngestQueue.Arn"]),
        # Step Functions log delivery: these actions support no resource-level permissions.
        (["logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups",
          "logs:DescribeResourcePolicies", "logs:GetLogDelivery", "logs:ListLogDeliveries",
          "logs:PutResourcePolicy", "logs:UpdateLogDelivery"], ["*"]),
        (XRAY_STATES, ["*"]),
    ]),
}

# The only Allow statements allowed a "*" resource: Step Functions log delivery and X-Ray.
STAR_RESOURCE_OK = {("StateMachineRole", tuple(ROLES["StateMachineRole"][1][3][0])),
                    ("StateMachineRole", XRAY_STATES)}
STAR_RESOURCE_OK |= {(role, XRAY_LAMBDA) for role in ("IngestRole", "OrchestratorRole", "ProcessorRole", "SweeperRole")}

# function -> (role, environment variable names the Rust code reads)
FUNCTIONS = {
    "IngestFunction": ("IngestRole", {"ORIGINALS_BUCKET", "PROCESSED_BUCKET", "METADATA_TABLE",
                                      "API_KEY_SECRET_ARN", "RUST_LOG"} | PRESETS_ENV),
    "OrchestratorFunction": ("OrchestratorRole", {"STATE_MACHINE_ARN", "ORIGINALS_BUCKET", "METADATA_TABLE",
                                                  "RUST_LOG"}),
    "ProcessorFunction": ("ProcessorRole", {"ORIGINALS_BUCKET", "PROCESSED_BUCKET", "METADATA_TABLE", "RUST_LOG"}
                          | PRESETS_ENV),
    "SweeperFunction": ("SweeperRole", {"METADATA_TABLE", "ORIGINALS_BUCKET", "INGEST_QUEUE_URL", "RUST_LOG"}),
}
STATE_MACHINES = {"ProcessImagesStateMachine": "StateMachineRole"}
BUCKETS = ("OriginalsBucket", "ProcessedBucket", "ConfigBucket")


def load():
    template, matches = decode(str(TEMPLATE))
    assert not matches, [str(m) for m in matches]
    return template


def canon(value):
    """One string per resource expression: '*', '!Ref X', '!GetAtt X.Arn', '!Sub ...'."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return f"!Ref {arg}"
        if fn == "Fn::GetAtt":
            return "!GetAtt " + (arg if isinstance(arg, str) else ".".join(arg))
        if fn == "Fn::Sub" and isinstance(arg, str):
            return f"!Sub {arg}"
    return repr(value)


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(document):
    return as_list(document.get("Statement", []))


def shape(statement):
    """(sorted actions, sorted resources) of an Allow statement."""
    return (tuple(sorted(as_list(statement.get("Action", [])))),
            tuple(sorted(canon(r) for r in as_list(statement.get("Resource", [])))))


def wildcard_problems(where, statement):
    problems = []
    for key in ("NotAction", "NotResource", "NotPrincipal"):
        if key in statement:
            problems.append(f"{where}: Allow with {key}")
    for action in as_list(statement.get("Action", [])):
        if not isinstance(action, str) or "*" in action:
            problems.append(f"{where}: wildcard action {action!r}")
    return problems


def violations(template):
    """Every way `template` is wider than the pinned policy; empty when it is exact."""
    problems = []
    resources = template.get("Resources", {})
    globals_function = template.get("Globals", {}).get("Function", {})
    for key in ("Role", "Policies", "PermissionsBoundary"):
        if key in globals_function:
            problems.append(f"Globals.Function sets {key}")

    for name, resource in resources.items():
        kind = resource.get("Type", "")
        if kind.startswith("AWS::IAM::") and kind != "AWS::IAM::Role":
            problems.append(f"{name}: unexpected {kind}")
        if kind == "AWS::IAM::Role" and name not in ROLES:
            problems.append(f"{name}: a role the least-privilege test does not pin")

    for role, (service, expected) in ROLES.items():
        props = resources.get(role, {}).get("Properties")
        if props is None:
            problems.append(f"{role}: missing")
            continue
        if props.get("ManagedPolicyArns"):
            problems.append(f"{role}: managed policies attached {props['ManagedPolicyArns']}")
        trust = statements(props.get("AssumeRolePolicyDocument", {}))
        if len(trust) != 1 or trust[0].get("Principal") != {"Service": service} \
                or trust[0].get("Action") != "sts:AssumeRole" or trust[0].get("Effect") != "Allow":
            problems.append(f"{role}: trust policy is not exactly {service} sts:AssumeRole")
        seen = []
        for policy in props.get("Policies", []):
            for statement in statements(policy.get("PolicyDocument", {})):
                where = f"{role}/{policy.get('PolicyName')}/{statement.get('Sid', '?')}"
                if statement.get("Effect") != "Allow":
                    continue
                problems += wildcard_problems(where, statement)
                if "Condition" in statement:
                    problems.append(f"{where}: unexpected Condition")
                actions, found = shape(statement)
                if "*" in found and (role, actions) not in STAR_RESOURCE_OK:
                    problems.append(f"{where}: '*' resource")
                seen.append((actions, found))
        want = sorted((tuple(sorted(a)), tuple(sorted(r))) for a, r in expected)
        if sorted(seen) != want:
            extra = [s for s in seen if s not in want]
            missing = [w for w in want if w not in seen]
            problems.append(f"{role}: statements differ; extra {extra}, missing {missing}")

    users = dict(FUNCTIONS)
    users.update({sm: (role, None) for sm, role in STATE_MACHINES.items()})
    for name, resource in resources.items():
        if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function",
                                    "AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine") \
                and name not in users:
            problems.append(f"{name}: a function or state machine the test does not pin")
    for name, (role, env) in users.items():
        props = resources.get(name, {}).get("Properties")
        if props is None:
            problems.append(f"{name}: missing")
            continue
        for key in ("Policies", "PermissionsBoundary"):
            if key in props:
                problems.append(f"{name}: {key} (SAM would build a wider role)")
        field = "Role" if "Role" in props else "RoleArn"
        if canon(props.get(field)) != f"!GetAtt {role}.Arn":
            problems.append(f"{name}: role is {canon(props.get(field))}, not {role}")
        if env is not None:
            got = set(props.get("Environment", {}).get("Variables", {}))
            if got != env:
                problems.append(f"{name}: environment {sorted(got)} != {sorted(env)}")

    for name, resource in resources.items():
        kind = resource.get("Type")
        if kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
            for statement in statements(resource["Properties"].get("PolicyDocument", {})):
                if statement.get("Effect") == "Allow":
                    problems += wildcard_problems(name, statement)
                    if "*" in shape(statement)[1]:
                        problems.append(f"{name}: '*' resource")
                    if statement.get("Principal") in ("*", {"AWS": "*"}):
                        problems.append(f"{name}: Allow to any principal")
    problems += bucket_problems(resources) + queue_policy_problems(resources)
    return problems


def bucket_problems(resources):
    problems = []
    policies = {canon(r["Properties"]["Bucket"]): r["Properties"]["PolicyDocument"]
                for r in resources.values() if r.get("Type") == "AWS::S3::BucketPolicy"}
    for bucket in BUCKETS:
        props = resources.get(bucket, {}).get("Properties", {})
        block = props.get("PublicAccessBlockConfiguration", {})
        for key in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
            if block.get(key) is not True:
                problems.append(f"{bucket}: {key} is not true")
        if [r.get("ObjectOwnership") for r in props.get("OwnershipControls", {}).get("Rules", [])] \
                != ["BucketOwnerEnforced"]:
            problems.append(f"{bucket}: ownership is not BucketOwnerEnforced")
        if not props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration"):
            problems.append(f"{bucket}: no default encryption")
        deny_tls = [s for s in statements(policies.get(f"!Ref {bucket}", {}))
                    if s.get("Effect") == "Deny" and s.get("Principal") == "*" and s.get("Action") == "s3:*"
                    and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                    and sorted(canon(r) for r in as_list(s.get("Resource")))
                    == sorted([f"!GetAtt {bucket}.Arn", f"!Sub ${{{bucket}.Arn}}/*"])]
        if not deny_tls:
            problems.append(f"{bucket}: no policy denying non-TLS requests to the bucket and its objects")
    return problems


def queue_policy_problems(resources):
    policy = resources.get("IngestQueuePolicy", {}).get("Properties", {})
    allows = [s for s in statements(policy.get("PolicyDocument", {})) if s.get("Effect") == "Allow"]
    ok = (len(allows) == 1
          and allows[0].get("Principal") == {"Service": "s3.amazonaws.com"}
          and allows[0].get("Action") == "sqs:SendMessage"
          and canon(allows[0].get("Resource")) == "!GetAtt IngestQueue.Arn"
          and set(allows[0].get("Condition", {}).get("ArnEquals", {})) == {"aws:SourceArn"}
          and allows[0]["Condition"].get("StringEquals") == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}})
    return [] if ok else ["IngestQueuePolicy: not exactly S3 SendMessage from this bucket and account"]


def test_template_is_least_privilege():
    assert violations(load()) == []


def test_the_queue_policy_names_the_originals_bucket():
    """The policy builds the bucket ARN from the name rule the bucket uses (no reference: a cycle)."""
    resources = load()["Resources"]
    name = resources["OriginalsBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    arn = resources["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"][
        "ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    assert arn[0] == "arn:${AWS::Partition}:s3:::" + name[0]
    assert arn[1] == name[1]


def widen(path, change):
    """A copy of the template with `change(node)` applied at `path` (keys and indexes)."""
    template = copy.deepcopy(dict(load()))
    node = template
    for key in path:
        node = node[key]
    change(node)
    return template


def role_statement(role, sid):
    props = ["Resources", role, "Properties", "Policies", 0, "PolicyDocument", "Statement"]
    index = [s.get("Sid") for s in load()["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"]].index(sid)
    return props + [index]


WIDENINGS = {
    "extra action": (role_statement("ProcessorRole", "GetOriginals"),
                     lambda s: s.update(Action=["s3:GetObject", "s3:DeleteObject"])),
    "wildcard action": (role_statement("IngestRole", "ReadAndCreateRecords"),
                        lambda s: s.update(Action="dynamodb:*")),
    "whole bucket instead of its prefix": (role_statement("ProcessorRole", "GetOriginals"),
                                           lambda s: s.update(Resource={"Fn::Sub": "${OriginalsBucket.Arn}/*"})),
    "star resource": (role_statement("StateMachineRole", "InvokeProcessor"), lambda s: s.update(Resource="*")),
    "table index added": (role_statement("ProcessorRole", "WriteRecords"),
                          lambda s: s.update(Resource=[{"Fn::GetAtt": ["MetadataTable", "Arn"]},
                                                       {"Fn::Sub": "${MetadataTable.Arn}/index/*"}])),
    "put instead of update in the catch": (role_statement("StateMachineRole", "MarkChunkFailed"),
                                           lambda s: s.update(Action="dynamodb:PutItem")),
    "sweeper reads the whole table": (role_statement("SweeperRole", "ListOpenRecords"),
                                      lambda s: s.update(Action=["dynamodb:Query", "dynamodb:Scan"])),
    "tracing statement given another action": (role_statement("ProcessorRole", "Tracing"),
                                               lambda s: s["Action"].append("s3:GetObject")),
    "state machine sends to any queue": (role_statement("StateMachineRole", "RedriveChunk"),
                                         lambda s: s.update(Resource={"Fn::Sub": "arn:aws:sqs:*:*:*"})),
    "presets read from any bucket": (role_statement("ProcessorRole", "ReadPresets"),
                                     lambda s: s.update(Resource={"Fn::Sub": "arn:${AWS::Partition}:s3:::*/*"})),
    "presets writable by the ingest": (role_statement("IngestRole", "ReadPresets"),
                                       lambda s: s.update(Action=["s3:GetObject", "s3:PutObject"])),
    "config bucket without TLS": (["Resources", "ConfigBucketPolicy", "Properties", "PolicyDocument"],
                                  lambda d: d.update(Statement=[])),
    "extra statement": (["Resources", "OrchestratorRole", "Properties", "Policies", 0, "PolicyDocument", "Statement"],
                        lambda ss: ss.append({"Effect": "Allow", "Action": "sqs:SendMessage",
                                              "Resource": {"Fn::GetAtt": ["IngestQueue", "Arn"]}})),
    "managed policy": (["Resources", "ProcessorRole", "Properties"],
                       lambda p: p.update(ManagedPolicyArns=["arn:aws:iam::aws:policy/AmazonS3FullAccess"])),
    "SAM policies on a function": (["Resources", "IngestFunction", "Properties"],
                                   lambda p: p.update(Policies=["AmazonDynamoDBFullAccess"])),
    "function on another role": (["Resources", "IngestFunction", "Properties"],
                                 lambda p: p.update(Role={"Fn::GetAtt": ["ProcessorRole", "Arn"]})),
    "NotAction": (role_statement("OrchestratorRole", "StartWorkflows"),
                  lambda s: s.update(NotAction="iam:*")),
    "queue open to any bucket": (["Resources", "IngestQueuePolicy", "Properties", "PolicyDocument", "Statement", 0],
                                 lambda s: s.pop("Condition")),
    "public access allowed": (["Resources", "ProcessedBucket", "Properties", "PublicAccessBlockConfiguration"],
                              lambda b: b.update(RestrictPublicBuckets=False)),
    "TLS no longer required": (["Resources", "OriginalsBucketPolicy", "Properties", "PolicyDocument"],
                               lambda d: d.update(Statement=[])),
    "an extra IAM policy resource": (["Resources"], lambda r: r.update(Extra={
        "Type": "AWS::IAM::Policy", "Properties": {"PolicyName": "x", "Roles": [{"Ref": "ProcessorRole"}],
                                                   "PolicyDocument": {"Statement": []}}})),
    "another environment variable": (["Resources", "ProcessorFunction", "Properties", "Environment", "Variables"],
                                     lambda v: v.update(API_KEY_SECRET_ARN={"Ref": "ApiKeySecret"})),
}


@pytest.mark.parametrize("case", sorted(WIDENINGS))
def test_widened_copy_fails(case):
    path, change = WIDENINGS[case]
    assert violations(widen(path, change)), f"widening ({case}) went unnoticed"


# ------------------------------------------------------------------ contracts the Rust code shares


def policy_const(name):
    match = re.search(rf"pub const {name}: \w+ = (\d+);", POLICY_RS.read_text())
    assert match, f"{name} not found in {POLICY_RS}"
    return int(match.group(1))


def test_redrive_and_visibility_follow_the_policy():
    template = load()
    params, resources = template["Parameters"], template["Resources"]
    assert params["MaxReceiveCount"]["Default"] == policy_const("MAX_RECEIVES")
    queue = resources["IngestQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert canon(queue["RedrivePolicy"]["deadLetterTargetArn"]) == "!GetAtt IngestDeadLetterQueue.Arn"
    orchestrator = resources["OrchestratorFunction"]["Properties"]
    # AWS's advice for SQS event sources: visibility >= 6 x function timeout (+ the batching window).
    window = params["OrchestratorBatchWindowSeconds"]["MaxValue"]
    assert queue["VisibilityTimeout"] >= 6 * orchestrator["Timeout"] + window
    dlq = resources["IngestDeadLetterQueue"]["Properties"]
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    source = orchestrator["Events"]["IngestQueue"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "OrchestratorMaxConcurrency"}


def test_table_layout_matches_the_record():
    table = load()["Resources"]["MetadataTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
        "id": "S", "status_shard": "N", "created_key": "S"}
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-status"
    # Write-sharded (no hot key per status) and keys-only plus `error` (one write unit an entry).
    assert index["KeySchema"] == [{"AttributeName": "status_shard", "KeyType": "HASH"},
                                  {"AttributeName": "created_key", "KeyType": "RANGE"}]
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["error"]}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_state_machine_is_the_asl_file_with_its_placeholders():
    resources = load()["Resources"]
    machine = resources["ProcessImagesStateMachine"]["Properties"]
    assert machine["Type"] == "EXPRESS"
    asl = INFRA / machine["DefinitionUri"]
    placeholders = set(re.findall(r"\$\{(\w+)\}", asl.read_text()))
    assert placeholders == set(machine["DefinitionSubstitutions"]) == {
        "MetadataTable", "ProcessorFunctionArn", "IngestQueueUrl"}
    assert canon(machine["DefinitionSubstitutions"]["IngestQueueUrl"]) == "!Ref IngestQueue"


def test_the_sweeper_runs_on_a_schedule_and_its_failures_alarm():
    resources = load()["Resources"]
    (event,) = resources["SweeperFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "Schedule" and event["Properties"]["Schedule"] == {"Ref": "SweeperSchedule"}
    filters = {r["Properties"]["MetricTransformations"][0]["MetricName"]: r["Properties"]
               for r in resources.values() if r.get("Type") == "AWS::Logs::MetricFilter"}
    failed = filters["StuckRecordsFailed"]
    assert failed["LogGroupName"] == {"Ref": "SweeperLogGroup"}
    # orchestrator::sweep logs this summary line; the JSON log format nests fields.
    assert failed["FilterPattern"] == '{ $.fields.message = "sweep finished" }'
    assert failed["MetricTransformations"][0]["MetricValue"] == "$.fields.failed"
    alarm = resources["SweeperFailedRecordsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (failed["MetricTransformations"][0]["MetricNamespace"],
                                                         "StuckRecordsFailed")


def test_functions_are_the_cargo_lambda_zips():
    template = load()
    assert template["Globals"]["Function"] == {
        "Runtime": "provided.al2023", "Architectures": ["arm64"], "Handler": "bootstrap", "Tracing": "Active"}
    for function, binary in [("IngestFunction", "ingest"), ("OrchestratorFunction", "orchestrator"),
                             ("ProcessorFunction", "processor"), ("SweeperFunction", "sweeper")]:
        props = template["Resources"][function]["Properties"]
        assert props["CodeUri"] == f"../target/lambda/{binary}/bootstrap.zip"
        for key in ("Runtime", "Architectures", "Handler"):
            assert key not in props, f"{function} overrides the global {key}"
    params = template["Parameters"]
    # Express executions end at 5 minutes; one invocation must stay well inside that.
    assert params["ProcessorTimeout"]["MaxValue"] <= 240
    assert params["ProcessorMemorySize"]["Default"] >= 3008


def test_functions_and_the_state_machine_are_traced():
    """X-Ray: active tracing on every function (Globals, none opting out) and the state machine."""
    resources = load()["Resources"]
    for function in FUNCTIONS:
        assert "Tracing" not in resources[function]["Properties"], f"{function} overrides the global Tracing"
    for machine in STATE_MACHINES:
        assert resources[machine]["Properties"]["Tracing"] == {"Enabled": True}


def test_the_dashboard_reads_the_metrics_the_code_writes():
    """The dashboard body is JSON once substituted, and names only metrics that exist: the EMF
    names in core/src/metrics.rs, and AWS's own."""
    import json

    resources = load()["Resources"]
    body = resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    emf = set(re.findall(r'pub const \w+: &str = "(imgpipe_\w+)";', (INFRA.parent / "core/src/metrics.rs").read_text()))
    used = {m[1] for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"] if m[0] == "imgpipe"}
    assert used and used <= emf, used - emf
    for widget in widgets:
        assert widget["x"] + widget["width"] <= 24
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "x"
            for metric in widget["properties"]["metrics"]:
                # namespace, name, then dimension name/value pairs, then at most the options
                assert len([p for p in metric if isinstance(p, str)]) % 2 == 0, metric


def test_presets_come_from_the_versioned_config_bucket():
    """A bad presets upload is rolled back by restoring the previous version; the functions read
    PresetsKey (empty = built-in presets) in ConfigBucket and check it every PresetsRefreshSeconds."""
    template = load()
    params, resources = template["Parameters"], template["Resources"]
    assert resources["ConfigBucket"]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert params["PresetsKey"]["Default"] == ""
    assert params["PresetsRefreshSeconds"]["Default"] == 60
    for function in ("IngestFunction", "ProcessorFunction"):
        env = resources[function]["Properties"]["Environment"]["Variables"]
        assert env["CONFIG_BUCKET"] == {"Ref": "ConfigBucket"}
        assert env["PRESETS_KEY"] == {"Ref": "PresetsKey"}
        assert env["PRESETS_REFRESH_SECONDS"] == {"Ref": "PresetsRefreshSeconds"}


def test_the_console_is_routed_and_the_buckets_take_only_its_presigned_calls():
    """The console's page at `/` reaches the ingest function (`/{proxy+}` needs a segment), and
    the browser may send presigned PUTs to originals and presigned GETs to renditions, nothing
    else: CORS allows no other method, and the buckets stay private."""
    resources = load()["Resources"]
    events = resources["IngestFunction"]["Properties"]["Events"]
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values()}
    assert routes == {("ANY", "/{proxy+}"), ("GET", "/")}
    expected = {"OriginalsBucket": ["PUT"], "ProcessedBucket": ["GET", "HEAD"]}
    for bucket, methods in expected.items():
        properties = resources[bucket]["Properties"]
        (rule,) = properties["CorsConfiguration"]["CorsRules"]
        assert rule["AllowedMethods"] == methods, bucket
        assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}, bucket
