"""What the production-scheduler tests share: compiling mf_flows/sched_flow.py
with a scheduler's `create` command, and running one compiled container
command the way its pod (or Batch job) would: `bash -c <command>` with the
container's environment, in an empty work dir, with a private /tmp and the
pod's /mnt/out volume (bubblewrap gives both), plus what the cluster adds
(credentials from the service account, the provider key from a Kubernetes
secret, the image's PATH with python, metaflow and mfsandbox)."""
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

from mf_e2e import BIN, CLIENT, FLOWS, last_json

FLOW = "MfsSchedFlow"
FLOW_FILE = "sched_flow.py"


class Scheduled:
    """One flow compiled for one scheduler, and the pods run from it."""

    def __init__(self, tmp_path, s3_server, metadata_service, daytona_emulator, daytona_env,
                 **extra_env):
        daytona_emulator.image_path = [os.path.dirname(sys.executable)]
        daytona_emulator.allow_ports = (urllib.parse.urlsplit(s3_server.url).port,)
        self.tmp = tmp_path
        self.work = tmp_path / "deploy"
        self.work.mkdir()
        shutil.copy(FLOWS / FLOW_FILE, self.work / FLOW_FILE)
        image_bin = tmp_path / "image-bin"  # the image's PATH: python, metaflow, mfsandbox
        image_bin.mkdir()
        os.symlink(BIN, image_bin / "mfsandbox")
        self.path = "%s:%s:/usr/bin:/bin" % (image_bin, os.path.dirname(sys.executable))
        self.root = "s3://%s/mf-%s" % (s3_server.bucket, tmp_path.name)
        env = s3_server.env(
            METAFLOW_USER="tester", USER="tester", METAFLOW_HOME=str(tmp_path / "deploy"),
            METAFLOW_DEFAULT_DATASTORE="s3", METAFLOW_DATASTORE_SYSROOT_S3=self.root,
            METAFLOW_DEFAULT_METADATA="service", METAFLOW_SERVICE_URL=metadata_service.url,
            MFS_TEST_SERVICE_URL=metadata_service.url, **extra_env)
        self.deploy_env = {k: v for k, v in env.items()
                           if not k.startswith(("MFSANDBOX_", "DAYTONA_", "E2B_"))}
        # What the cluster gives every pod besides the container's own env.
        self.cluster_env = {
            "PATH": self.path, "LANG": "C.UTF-8",
            "AWS_ACCESS_KEY_ID": s3_server.key_id, "AWS_SECRET_ACCESS_KEY": s3_server.secret,
            "AWS_DEFAULT_REGION": s3_server.region,
            "METAFLOW_SKIP_INSTALL_DEPENDENCIES": "1",  # the image has boto3
            **{k: v for k, v in extra_env.items() if k.startswith("AWS_")},
            **daytona_env,
        }
        self.secret_values = [s3_server.secret, daytona_env["DAYTONA_API_KEY"]]
        self.pods = 0

    def create(self, *args):
        """`python sched_flow.py <args>` on the deploying machine."""
        return subprocess.run([sys.executable, FLOW_FILE, "--no-pylint", *args], cwd=self.work,
                              env=self.deploy_env, capture_output=True, text=True, timeout=300)

    def run_pod(self, command, env):
        """Runs one container command; returns (status, output, {outfile: text})."""
        self.pods += 1
        pod = self.tmp / ("pod%d" % self.pods)
        (pod / "work").mkdir(parents=True)
        (pod / "out").mkdir()
        (pod / "home").mkdir()
        full = dict(env, HOME=str(pod / "home"), **self.cluster_env)
        r = subprocess.run(["bwrap", "--dev-bind", "/", "/", "--tmpfs", "/tmp",
                            "--bind", str(self.tmp), str(self.tmp),
                            "--bind", str(pod / "out"), "/mnt/out",
                            "--chdir", str(pod / "work"), "--die-with-parent", *command],
                           env=full, capture_output=True, text=True, timeout=600)
        outs = {p.name: p.read_text() for p in (pod / "out").iterdir()}
        return r.returncode, r.stdout + r.stderr, outs

    def client(self, run_id, *names):
        """{step: {task: {current_attempt, attempts: {a: {names, data}}}}} via the Client API."""
        env = dict(self.deploy_env)
        c = subprocess.run([sys.executable, "-c", CLIENT, "%s/%s" % (FLOW, run_id),
                            ",".join(names)], cwd=self.work, env=env, capture_output=True,
                           text=True, timeout=120)
        assert c.returncode == 0, c.stderr[-3000:]
        return last_json(c.stdout)


    def assert_run(self, run_id, square_ids):
        """The whole run through the Client API: each child's latest attempt
        ran in a sandbox, the first child was retried once, join and end saw
        every child.  Returns what the Client API gave."""
        got = self.client(run_id, "square_value", "in_sandbox", "backend", "home", "pod_env",
                          "service_reachable", "attempt_seen", "squares", "total")
        squares = got["square"]
        assert sorted(squares) == sorted(square_ids)
        for tid, value in zip(square_ids, (3, 4)):
            t = squares[tid]
            last = t["attempts"][str(t["current_attempt"])]["data"]
            assert_square_sandboxed(last, value)
            assert last["attempt_seen"] == t["current_attempt"]
        assert squares[square_ids[0]]["current_attempt"] == 1
        (join,) = got["join"].values()
        (end,) = got["end"].values()
        assert join["attempts"]["0"]["data"]["squares"] == [9, 16]
        assert end["attempts"]["0"]["data"]["total"] == 25
        return got


def aws(s3_server, service):
    """A boto3 client for another AWS service on the same moto server."""
    import boto3
    return boto3.client(service, endpoint_url=s3_server.url, region_name=s3_server.region,
                        aws_access_key_id=s3_server.key_id,
                        aws_secret_access_key=s3_server.secret)


def fill(text, params):
    """Replaces the scheduler's template placeholders ({{...}}) it would fill."""
    def one(m):
        key = m.group(1).strip()
        assert key in params, "unexpected template parameter %s" % key
        return str(params[key])
    return re.sub(r"\{\{([^}]*)\}\}", one, text)


def assert_square_sandboxed(data, value):
    """What the @sandbox step saw from inside (see sched_flow.py)."""
    assert data["square_value"] == value * value
    assert data["in_sandbox"] is True and data["backend"] == "daytona"
    assert data["home"].startswith("/home/daytona")  # the emulated sandbox, not the pod
    assert data["pod_env"] == []  # no pod, cluster or provider variable inside
    assert data["service_reachable"] is False  # only the pod-side relay reaches it


def assert_no_leak(outputs, secrets):
    for out in outputs:
        for s in secrets:
            assert s not in out
