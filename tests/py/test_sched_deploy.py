"""What a deployment is told before anything is deployed, and `--with
sandbox:backend=...` on the command line: at `run` (every step in a local
sandbox) and at `argo-workflows create` (every compiled pod command carries
it, so each pod hands its task to mfsandbox)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from mf_e2e import BIN, FLOWS

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")


def flow_dir(tmp_path, name):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "home").mkdir()
    shutil.copy(FLOWS / name, work / name)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("METAFLOW_", "MFSANDBOX_", "AWS_", "DAYTONA_", "E2B_"))}
    env.update(METAFLOW_USER="tester", METAFLOW_HOME=str(tmp_path / "home"),
               METAFLOW_DEFAULT_DATASTORE="local", METAFLOW_DEFAULT_METADATA="local",
               MFSANDBOX_BIN=str(BIN), PYTHONUNBUFFERED="1")
    return work, env


def s3_env(env, s3_server, tmp_path):
    return dict(env, **{k: v for k, v in s3_server.env().items() if k.startswith("AWS_")},
                METAFLOW_S3_ENDPOINT_URL=s3_server.url, METAFLOW_DEFAULT_DATASTORE="s3",
                METAFLOW_DATASTORE_SYSROOT_S3="s3://%s/mf-%s" % (s3_server.bucket,
                                                                 tmp_path.name))


def flow(work, env, name, *args):
    return subprocess.run([sys.executable, name, "--no-pylint", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)


def one_line_error(r):
    lines = [l.strip() for l in (r.stdout + r.stderr).splitlines() if "step '" in l]
    assert len(lines) == 1, r.stdout[-2000:] + r.stderr[-2000:]
    return lines[0]


@needs_bwrap
def test_with_sandbox_on_the_run_command_line_sandboxes_every_step(tmp_path):
    work, env = flow_dir(tmp_path, "nodeco_flow.py")
    r = flow(work, env, "nodeco_flow.py", "run", "--with", "sandbox:backend=local")
    assert r.returncode == 0, r.stderr[-4000:]
    c = subprocess.run([sys.executable, "-c",
                        "import json\nfrom metaflow import Flow, namespace\nnamespace(None)\n"
                        "r = Flow('MfsNoDecoFlow').latest_run\n"
                        "print(json.dumps([r['start'].task['workload'].data,"
                        " r['start'].task['backend'].data, r['end'].task['workload'].data]))"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert c.returncode == 0, c.stderr[-3000:]
    assert json.loads(c.stdout.splitlines()[-1]) == ["1", "local", "1"]


def test_with_sandbox_at_deploy_reaches_every_pod_command(tmp_path, s3_server):
    work, env = flow_dir(tmp_path, "nodeco_flow.py")
    r = flow(work, s3_env(env, s3_server, tmp_path), "nodeco_flow.py",
             "--with", "sandbox:backend=daytona", "argo-workflows", "create", "--only-json")
    assert r.returncode == 0, r.stderr[-4000:]
    tmpl = json.loads(r.stdout[r.stdout.index("{"):])
    commands = {t["name"]: " ".join(t["container"]["command"])
                for t in tmpl["spec"]["templates"] if "container" in t}
    assert set(commands) >= {"start", "end"}
    for name in ("start", "end"):
        assert "--with 'sandbox:backend=daytona" in commands[name], commands[name][-2000:]


def test_deploy_refuses_a_sandbox_step_without_a_written_backend(tmp_path, s3_server):
    work, env = flow_dir(tmp_path, "plain_flow.py")
    env = dict(s3_env(env, s3_server, tmp_path), METAFLOW_SANDBOX_BACKEND="daytona")
    r = flow(work, env, "plain_flow.py", "argo-workflows", "create", "--only-json")
    assert r.returncode != 0
    line = one_line_error(r)
    assert line.startswith("step 'start': @sandbox needs its backend written in the flow "
                           "for Argo Workflows"), line
    assert "METAFLOW_SANDBOX_BACKEND" in line and "apiVersion" not in r.stdout


def test_airflow_create_is_refused_naming_the_step(tmp_path, s3_server):
    work, env = flow_dir(tmp_path, "sched_flow.py")
    r = flow(work, s3_env(env, s3_server, tmp_path), "sched_flow.py",
             "airflow", "create", "dag.py")
    assert r.returncode != 0
    line = one_line_error(r)
    assert line.startswith("step 'square': @sandbox is not supported with Airflow: its tasks "
                           "would run unsandboxed"), line
    assert not (work / "dag.py").exists()
