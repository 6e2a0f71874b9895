"""@sandbox under Argo Workflows, with no cluster: `argo-workflows create
--only-json` compiles the flow (code package on S3/moto), then the test plays
Argo for this DAG: it runs each step's container command as its pod would
(the template's env and args, Argo's placeholders filled, outputs read from
/mnt/out), retries the failed pod with {{retries}}+1, and feeds outputs to
the next tasks.  The @sandbox foreach children run in Daytona (emulator)
sandboxes, their metadata reaches the real metadata service through the
pod-side relay, and the Client API reads the run back."""
import json
import shutil

import pytest

from sched_pods import FLOW, Scheduled, assert_no_leak, fill

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")

WORKFLOW = "mfsschedflow-x7k2q"
CREATED = "2026-12-05T09:00:00Z"


def containers(template_json):
    """{step: (argv, env)} for every container template."""
    out = {}
    for t in template_json["spec"]["templates"]:
        c = t.get("container")
        if not c:
            continue
        env = {}
        for e in c.get("env") or []:
            if e.get("valueFrom"):  # the downward API
                env[e["name"]] = "pod-" + e["valueFrom"]["fieldRef"]["fieldPath"]
            else:
                env[e["name"]] = "" if e.get("value") is None else str(e["value"])
        out[t["name"]] = (c["command"] + (c.get("args") or []), env, t)
    return out


def pod(sched, tmpl, params):
    argv, env, _ = tmpl
    params = dict(params, **{"workflow.name": WORKFLOW, "workflow.creationTimestamp": CREATED})
    return sched.run_pod([fill(a, params) for a in argv],
                         {k: fill(v, params) for k, v in env.items()})


def test_argo_workflows_pods_run_sandbox_steps_in_sandboxes(
        tmp_path, s3_server, metadata_service, daytona_emulator, daytona_env):
    sched = Scheduled(tmp_path, s3_server, metadata_service, daytona_emulator, daytona_env)
    c = sched.create("argo-workflows", "create", "--only-json")
    assert c.returncode == 0, c.stderr[-3000:]
    tmpls = containers(json.loads(c.stdout[c.stdout.index("{"):]))
    assert tmpls["square"][2]["retryStrategy"]["limit"] in (1, "1")
    run_id = "argo-" + WORKFLOW
    outputs = []

    rc, out, start = pod(sched, tmpls["start"], {})
    outputs.append(out)
    assert rc == 0, out[-4000:]
    splits = json.loads(start["splits"])
    assert splits == [0, 1]

    square_ids = []
    for item in splits:
        args = {"inputs.parameters.input-paths": "%s/start/%s" % (run_id, start["task_id"]),
                "inputs.parameters.split-index": item}
        rc, out, res = pod(sched, tmpls["square"], dict(args, retries=0))
        outputs.append(out)
        if item == 0:  # fails on purpose: Argo retries the pod
            assert rc != 0 and "first attempt fails on purpose" in out, out[-4000:]
            assert "task_id" not in res
            rc, out, res = pod(sched, tmpls["square"], dict(args, retries=1))
            outputs.append(out)
        assert rc == 0, out[-4000:]
        assert "square %d in a sandbox" % (3 + item) in out
        square_ids.append(res["task_id"])  # Argo's output parameter, written in the pod

    rc, out, join = pod(sched, tmpls["join"], {
        "inputs.parameters.input-paths": "%s/start/%s" % (run_id, start["task_id"]),
        "inputs.parameters.split-cardinality": start["split_cardinality"]})
    outputs.append(out)
    assert rc == 0, out[-4000:]
    rc, out, _ = pod(sched, tmpls["end"], {
        "inputs.parameters.input-paths": "%s/join/%s" % (run_id, join["task_id"])})
    outputs.append(out)
    assert rc == 0, out[-4000:]

    sched.assert_run(run_id, square_ids)

    # the pod registered Argo's bookkeeping for the sandboxed task, once
    meta = metadata_service.metadata(FLOW, run_id, "square", square_ids[1])
    assert [m["value"] for m in meta if m["field_name"] == "argo-workflow-name"] == [WORKFLOW]
    assert daytona_emulator.created_total == 3
    assert daytona_emulator.live_count() == 0
    assert_no_leak(outputs, sched.secret_values)
