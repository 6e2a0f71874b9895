"""A flow whose first step fails on its first attempt, so the relay sees a
retried task (attempts 0 and 1) with artifacts in each."""
import atexit
import os
import sys

from metaflow import FlowSpec, current, retry, step


_SYNC = """
import sys
from metaflow.datastore import FlowDataStore
from metaflow.metadata_provider.util import sync_local_metadata_to_datastore
from metaflow.plugins.datastores.s3_storage import S3Storage
root, run, step, task, attempt = sys.argv[1:6]
fds = FlowDataStore("RelayFlow", None, storage_impl=S3Storage, ds_root=root)
tds = fds.get_task_datastore(run, step, task, attempt=int(attempt), mode="w")
sync_local_metadata_to_datastore(".metaflow", tds)
"""


def _sync_metadata_at_exit():
    """Stands in for the sandbox decorator's task_finished (upload of the
    task's local metadata, Metaflow's own helper) in tests that run this
    step command directly in a sandbox.  Runs on success and on failure, in
    a fresh interpreter (S3 workers cannot start during interpreter exit)."""
    import subprocess

    argv = sys.argv
    opt = lambda name: argv[argv.index(name) + 1]
    subprocess.run([sys.executable, "-c", _SYNC, opt("--datastore-root"), opt("--run-id"),
                    argv[argv.index("step") + 1], opt("--task-id"), opt("--retry-count")],
                   check=False)


if os.environ.get("MFS_TEST_SYNC_AT_EXIT") == "1" and "step" in sys.argv:
    atexit.register(_sync_metadata_at_exit)


class RelayFlow(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @step
    def start(self):
        self.x = 41 + current.retry_count
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails on purpose")
        self.next(self.end)

    @step
    def end(self):
        self.y = self.x + 1


if __name__ == "__main__":
    RelayFlow()
