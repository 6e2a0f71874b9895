"""Runs one Metaflow task the way a sandbox does, with real Metaflow: in a
fresh directory, with local metadata and the S3 datastore, followed by
Metaflow's own sync_local_metadata_to_datastore (what the sandbox decorator's
task_finished calls).  The launcher side (run and task ids) is created on the
metadata service first, as Metaflow's runtime does in service mode."""
import pathlib
import shutil
import subprocess
import sys

FLOWS = pathlib.Path(__file__).resolve().parent / "flows"

SYNC = """
import sys
from metaflow.datastore import FlowDataStore
from metaflow.plugins.datastores.s3_storage import S3Storage
from metaflow.metadata_provider.util import sync_local_metadata_to_datastore
flow, root, run, step, task, attempt = sys.argv[1:7]
fds = FlowDataStore(flow, None, storage_impl=S3Storage, ds_root=root)
tds = fds.get_task_datastore(run, step, task, attempt=int(attempt), mode="w")
sync_local_metadata_to_datastore(".metaflow", tds)
"""


def top_args(metadata, ds_root):
    return ["--quiet", "--metadata", metadata, "--environment", "local", "--datastore", "s3",
            "--datastore-root", ds_root, "--event-logger", "nullSidecarLogger",
            "--monitor", "nullSidecarMonitor", "--no-pylint"]


def run_in_sandbox(workdir, flow_file, flow, ds_root, run, step, task, attempt, input_paths, env,
                   sync=True):
    """Returns the step's exit code; uploads the metadata unless sync=False
    (a task that dies before task_finished)."""
    box = pathlib.Path(workdir) / ("box-%s-%s-%d" % (step, task, attempt))
    box.mkdir()
    shutil.copy(FLOWS / flow_file, box / flow_file)
    cmd = [sys.executable, flow_file] + top_args("local", ds_root) + [
        "step", step, "--run-id", run, "--task-id", task, "--input-paths", input_paths,
        "--retry-count", str(attempt), "--max-user-code-retries", "1"]
    rc = subprocess.run(cmd, cwd=box, env=env, capture_output=True).returncode
    if sync:
        subprocess.run([sys.executable, "-c", SYNC, flow, ds_root, run, step, task, str(attempt)],
                       cwd=box, env=env, check=True, capture_output=True)
    return rc


def init_parameters(workdir, flow_file, ds_root, run, task, env, metadata="service"):
    """The runtime's own `init` (not sandboxed) writes the _parameters task."""
    d = pathlib.Path(workdir) / "launcher"
    d.mkdir(exist_ok=True)
    shutil.copy(FLOWS / flow_file, d / flow_file)
    cmd = [sys.executable, flow_file] + top_args(metadata, ds_root) + [
        "init", "--run-id", run, "--task-id", task]
    subprocess.run(cmd, cwd=d, env=env, check=True, capture_output=True)
