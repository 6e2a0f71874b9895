"""`mfsandbox run --backend local --relay` on real Metaflow step commands with
the S3 datastore on moto and the real metaflow-local-service: the relay path
end to end without a remote provider.  The launcher asks for service
metadata (METAFLOW_DEFAULT_METADATA=service); inside the sandbox the task
writes local metadata (as Metaflow support arranges) and uploads it at exit
(tests/py/flows/RelayFlow.py stands in for the decorator's task_finished)."""
import collections
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from sandbox_emulation import FLOWS, init_parameters
from mf_e2e import rows_by_key
from test_relay import CLIENT, FILE, FLOW

ROOT = pathlib.Path(__file__).resolve().parents[2]
MFS = str(ROOT / "mfsandbox")


@pytest.fixture
def launcher(s3_server, metadata_service, tmp_path):
    ds_root = "s3://%s/cli-%s" % (s3_server.bucket, tmp_path.name)
    env = s3_server.env(METAFLOW_USER="tester", USER="tester",
                        METAFLOW_SERVICE_URL=metadata_service.url,
                        METAFLOW_DEFAULT_METADATA="service", DS_ROOT=ds_root,
                        MFSANDBOX_RELAY_SPOOL=str(tmp_path / "spool"),
                        MFSANDBOX_LOCAL_STATE_DIR=str(tmp_path / "state"))
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(FLOWS / FILE, code / FILE)
    return env, code


def sandboxed_step(env, code, run, step, task, attempt, inputs, sync=True):
    cmd = [MFS, "run", "--backend", "local", "--relay", "--code", str(code),
           "--env", "METAFLOW_DEFAULT_METADATA=local", "--env", "METAFLOW_USER=tester",
           "--env", "METAFLOW_S3_ENDPOINT_URL=" + env["METAFLOW_S3_ENDPOINT_URL"],
           "--env", "MFS_TEST_SYNC_AT_EXIT=%d" % sync, "--",
           sys.executable, FILE, "--quiet", "--datastore", "s3", "--datastore-root", env["DS_ROOT"],
           "--no-pylint", "step", step, "--run-id", run, "--task-id", task,
           "--input-paths", inputs, "--retry-count", str(attempt), "--max-user-code-retries", "1"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def test_local_backend_relays_a_retried_flow_to_the_service(launcher, metadata_service, tmp_path):
    env, code = launcher
    run = metadata_service.new_run(FLOW)
    params = metadata_service.new_task(FLOW, run, "_parameters")
    init_parameters(tmp_path, FILE, env["DS_ROOT"], run, params, env)
    start = metadata_service.new_task(FLOW, run, "start")
    inputs = "%s/_parameters/%s" % (run, params)

    r = sandboxed_step(env, code, run, "start", start, 0, inputs)
    assert r.returncode == 1, r.stderr  # the task's own exit code, relay or not
    assert "relay:" not in r.stderr
    r = sandboxed_step(env, code, run, "start", start, 1, inputs)
    assert r.returncode == 0, r.stderr
    end = metadata_service.new_task(FLOW, run, "end")
    r = sandboxed_step(env, code, run, "end", end, 0, "%s/start/%s" % (run, start))
    assert r.returncode == 0, r.stderr
    # The AWS secret was forwarded through the environment, never printed.
    assert env["AWS_SECRET_ACCESS_KEY"] not in r.stderr + r.stdout

    meta = metadata_service.metadata(FLOW, run, "start", start)
    assert {m.get("attempt_id") for m in meta} == {0, 1}
    assert max(rows_by_key(meta).values()) == 1
    arts = metadata_service.artifacts(FLOW, run, "start", start)
    assert max(collections.Counter((a["name"], a["attempt_id"]) for a in arts).values()) == 1

    c = subprocess.run([sys.executable, "-c", CLIENT, "%s/%s" % (FLOW, run)], env=env,
                       capture_output=True, text=True)
    assert c.returncode == 0, c.stderr
    seen = json.loads(c.stdout)
    assert seen["start"]["current_attempt"] == 1
    assert seen["start"]["attempts"]["1"]["data"] == {"x": 42}
    assert seen["end"]["attempts"]["0"]["data"] == {"x": 42, "y": 43}

    # Nothing left to replay; replaying again adds nothing.
    r = subprocess.run([MFS, "relay", "replay", "%s/%s" % (FLOW, run)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "0 still spooled" in r.stderr
    assert rows_by_key(metadata_service.metadata(FLOW, run, "start", start)) == rows_by_key(meta)


def test_task_that_died_before_its_metadata_keeps_its_exit_code(launcher, metadata_service,
                                                                tmp_path):
    env, code = launcher
    run = metadata_service.new_run(FLOW)
    params = metadata_service.new_task(FLOW, run, "_parameters")
    init_parameters(tmp_path, FILE, env["DS_ROOT"], run, params, env)
    start = metadata_service.new_task(FLOW, run, "start")
    r = sandboxed_step(env, code, run, "start", start, 0, "%s/_parameters/%s" % (run, params),
                       sync=False)
    assert r.returncode == 1
    warnings = [l for l in r.stderr.splitlines() if l.startswith("mfsandbox: relay:")]
    assert warnings == ["mfsandbox: relay: %s/%s/start/%s attempt 0: the task wrote no metadata "
                        "(it died before finishing); nothing to relay" % (FLOW, run, start)]


def test_service_down_spools_and_cli_replay_finishes(launcher, metadata_service, tmp_path):
    env, code = launcher
    run = metadata_service.new_run(FLOW)
    params = metadata_service.new_task(FLOW, run, "_parameters")
    init_parameters(tmp_path, FILE, env["DS_ROOT"], run, params, env)
    start = metadata_service.new_task(FLOW, run, "start")
    down = dict(env, METAFLOW_SERVICE_URL="http://127.0.0.1:1")
    r = sandboxed_step(down, code, run, "start", start, 0, "%s/_parameters/%s" % (run, params))
    assert r.returncode == 1  # still the task's code, not the relay's
    assert "mfsandbox relay replay %s/%s/start/%s/0" % (FLOW, run, start) in r.stderr
    assert metadata_service.metadata(FLOW, run, "start", start) == []
    # The spool keeps the URL it was meant for; the service is back there:
    spec_file = tmp_path / "spool" / FLOW / run / "start" / start / "0" / "spec.json"
    spec = json.loads(spec_file.read_text())
    spec["service_url"] = metadata_service.url
    spec_file.write_text(json.dumps(spec))
    r = subprocess.run([MFS, "relay", "replay", "%s/%s/start" % (FLOW, run)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "1 relayed, 0 still spooled" in r.stderr, r.stderr
    meta = metadata_service.metadata(FLOW, run, "start", start)
    assert meta and max(rows_by_key(meta).values()) == 1


def profile_only(env, tmp_path, profile):
    """The launcher's keys only in an AWS profile (a non-default one; the
    default profile holds wrong keys)."""
    creds = tmp_path / "aws-credentials"
    creds.write_text("[default]\naws_access_key_id = WRONG\naws_secret_access_key = wrong\n"
                     "[ci]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                     % (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]))
    env = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.update(AWS_PROFILE=profile, AWS_SHARED_CREDENTIALS_FILE=str(creds))
    return env


def test_missing_aws_profile_is_one_line_before_any_sandbox(launcher, metadata_service, tmp_path):
    env, code = launcher
    env = profile_only(env, tmp_path, "nope")
    r = sandboxed_step(env, code, "1", "start", "2", 0, "1/_parameters/1")
    assert r.returncode == 202
    assert r.stderr.splitlines() == [
        "mfsandbox: AWS_PROFILE=nope: no such profile in %s or %s/.aws/config: fix AWS_PROFILE, "
        "AWS_SHARED_CREDENTIALS_FILE or AWS_CONFIG_FILE (see docs/configuration.md)"
        % (env["AWS_SHARED_CREDENTIALS_FILE"], env["HOME"])]
    state = tmp_path / "state"
    assert not state.exists() or not list(state.iterdir())


def test_profile_keys_go_to_the_sandbox_env_redacted_in_dry_run(launcher, tmp_path):
    env, code = launcher
    secret = env["AWS_SECRET_ACCESS_KEY"]
    r, _ = dry_run_env(profile_only(env, tmp_path, "ci"))
    assert r.returncode == 0, r.stderr
    assert "  AWS_ACCESS_KEY_ID=<redacted>" in r.stdout
    assert "  AWS_SECRET_ACCESS_KEY=<redacted>" in r.stdout
    assert secret not in r.stdout + r.stderr and "AWS_PROFILE" not in r.stdout


def dry_run_env(env):
    r = subprocess.run([MFS, "run", "--backend", "local", "--dry-run", "--",
                        sys.executable, FILE, "--datastore", "s3", "--datastore-root",
                        env["DS_ROOT"], "step", "start", "--run-id", "1", "--task-id", "2",
                        "--input-paths", "1/_parameters/1"],
                       env=env, capture_output=True, text=True)
    return r, [l.strip().split("=")[0] for l in r.stdout.split("env:\n")[-1].split("uploads:")[0]
               .splitlines()]


def test_provider_keys_reach_a_step_only_when_named(launcher):
    env, _ = launcher
    env = dict(env, DAYTONA_API_KEY="dtn-secret", E2B_API_KEY="e2b-secret")
    r, names = dry_run_env(env)
    assert r.returncode == 0 and "AWS_SECRET_ACCESS_KEY" in names, r.stderr
    assert "DAYTONA_API_KEY" not in names and "E2B_API_KEY" not in names
    r, names = dry_run_env(dict(env, MFSANDBOX_FORWARD_ENV="E2B_API_KEY, DAYTONA_API_KEY"))
    assert "DAYTONA_API_KEY" in names and "E2B_API_KEY" in names
    assert "secret" not in r.stdout.replace("AWS_SECRET", "")
    r, _ = dry_run_env(dict(env, MFSANDBOX_FORWARD_ENV="E2B_API_KEY=e2b-secret"))
    assert r.returncode == 202
    assert r.stderr.splitlines() == ["mfsandbox: MFSANDBOX_FORWARD_ENV takes variable names "
                                     "separated by commas (letters, digits, _), never values"]
