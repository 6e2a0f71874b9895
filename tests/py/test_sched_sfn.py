"""@sandbox under AWS Step Functions, with no account: `step-functions
create --only-json` compiles the flow against moto (S3 for the code
package, Batch for the job queue, DynamoDB for foreach bookkeeping), then
the test plays Step Functions and Batch for this state machine: each state's
`ContainerOverrides` command runs as its Batch job would (its Environment,
the JSONPath values filled, AWS_BATCH_JOB_ID/ATTEMPT), the failed job is
retried by Batch with the next attempt, and the foreach cardinality comes
from DynamoDB as the Map state reads it.  The @sandbox children run in
Daytona (emulator) sandboxes; results come back through the Client API."""
import json
import shutil
import uuid

import pytest

from sched_pods import FLOW, Scheduled, assert_no_leak, aws

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")

EXECUTION = "exec-7c41"
TABLE = "mfs-sfn-test"


def aws_setup(s3_server, suffix):
    """What `step-functions create` looks up: a Batch job queue (on a
    Fargate compute environment), roles, and the DynamoDB table."""
    iam = aws(s3_server, "iam")
    role = iam.create_role(RoleName="mfs-batch-" + suffix,
                           AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    ec2 = aws(s3_server, "ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    batch = aws(s3_server, "batch")
    ce = batch.create_compute_environment(
        computeEnvironmentName="mfs-ce-" + suffix, type="MANAGED", state="ENABLED",
        serviceRole=role, computeResources={"type": "FARGATE", "maxvCpus": 4,
                                            "subnets": [subnet], "securityGroupIds": [group]})
    batch.create_job_queue(jobQueueName="mfs-q-" + suffix, state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment":
                                                     ce["computeEnvironmentArn"]}])
    dynamo = aws(s3_server, "dynamodb")
    dynamo.create_table(TableName=TABLE + suffix, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pathspec", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pathspec",
                                               "AttributeType": "S"}])
    return {"METAFLOW_SFN_IAM_ROLE": role, "METAFLOW_ECS_S3_ACCESS_IAM_ROLE": role,
            "METAFLOW_ECS_FARGATE_EXECUTION_ROLE": role,
            "METAFLOW_BATCH_JOB_QUEUE": "mfs-q-" + suffix,
            "METAFLOW_SFN_DYNAMO_DB_TABLE": TABLE + suffix,
            "AWS_ENDPOINT_URL": s3_server.url}


def jobs(state_machine):
    """{step: (command, Environment list)} for every Batch task state."""
    out = {}

    def walk(states):
        for name, st in states.items():
            if "Iterator" in st:
                walk(st["Iterator"]["States"])
            params = st.get("Parameters") or {}
            if "ContainerOverrides" in params:
                c = params["ContainerOverrides"]
                out[name] = (c["Command"], c["Environment"])
    walk(state_machine["States"])
    return out


def job(sched, spec, paths, job_id, attempt=1):
    """Runs one Batch job of the state machine: `paths` holds the JSONPath
    values Step Functions would put in."""
    command, environment = spec
    env = {}
    for e in environment:
        env[e["Name"]] = paths[e["Value.$"]] if "Value.$" in e else e["Value"]
    env.update(AWS_BATCH_JOB_ID=job_id, AWS_BATCH_JOB_ATTEMPT=str(attempt),
               AWS_BATCH_CE_NAME="mfs-ce", AWS_BATCH_JQ_NAME="mfs-q",
               AWS_EXECUTION_ENV="AWS_ECS_FARGATE")
    return sched.run_pod(command, env)


def test_step_functions_jobs_run_sandbox_steps_in_sandboxes(
        tmp_path, s3_server, metadata_service, daytona_emulator, daytona_env):
    suffix = uuid.uuid4().hex[:8]
    sched = Scheduled(tmp_path, s3_server, metadata_service, daytona_emulator, daytona_env,
                      **aws_setup(s3_server, suffix))
    c = sched.create("step-functions", "create", "--only-json")
    assert c.returncode == 0, c.stderr[-3000:]
    specs = jobs(json.loads(c.stdout[c.stdout.index("{"):]))
    run_id = "sfn-" + EXECUTION
    outputs = []
    base = {"$$.Execution.Name": EXECUTION, "$.Parameters.['metaflow.run_id']": EXECUTION}

    start_id = "start-" + suffix
    rc, out, _ = job(sched, specs["start"], base, start_id)
    outputs.append(out)
    assert rc == 0, out[-4000:]
    # the Map state's input: the cardinality the start task wrote to DynamoDB
    item = aws(s3_server, "dynamodb").get_item(
        TableName=TABLE + suffix, Key={"pathspec": {"S": start_id}})["Item"]
    indices = sorted(int(i) for i in item["for_each_cardinality"]["NS"])
    assert indices == [0, 1]

    square_ids = []
    for index in indices:
        job_id = "square-%d-%s" % (index, suffix)
        paths = dict(base, **{"$.JobId": start_id, "$.SplitParentTaskId": start_id,
                              "$.Index": str(index)})
        rc, out, _ = job(sched, specs["square"], paths, job_id)
        outputs.append(out)
        if index == 0:  # fails on purpose: Batch runs the job's next attempt
            assert rc != 0 and "first attempt fails on purpose" in out, out[-4000:]
            rc, out, _ = job(sched, specs["square"], paths, job_id, attempt=2)
            outputs.append(out)
        assert rc == 0, out[-4000:]
        assert "square %d in a sandbox" % (3 + index) in out
        square_ids.append(job_id)

    join_id = "join-" + suffix
    rc, out, _ = job(sched, specs["join"],
                     dict(base, **{"$.Parameters.split_parent_task_id_start": start_id}),
                     join_id)
    outputs.append(out)
    assert rc == 0, out[-4000:]  # found both children through the pods' DynamoDB rows
    rc, out, _ = job(sched, specs["end"], dict(base, **{"$.JobId": join_id}), "end-" + suffix)
    outputs.append(out)
    assert rc == 0, out[-4000:]

    got = sched.assert_run(run_id, square_ids)
    assert list(got["join"]) == [join_id] and list(got["end"]) == ["end-" + suffix]

    meta = metadata_service.metadata(FLOW, run_id, "square", square_ids[1])
    assert [m["value"] for m in meta
            if m["field_name"] == "aws-step-functions-execution"] == [EXECUTION]
    assert daytona_emulator.created_total == 3
    assert daytona_emulator.live_count() == 0
    assert_no_leak(outputs, sched.secret_values)
