"""@sandbox, @daytona and @e2b: run a step's task with the mfsandbox executor.

Layer: Metaflow integration.  Python computes only what needs Metaflow (the
code package, the environment's interpreter and bootstrap commands, config
values) and writes it into a JSON spec (see spec.py); Metaflow's runtime then
spawns `mfsandbox run ... --metaflow-spec SPEC -- <step command>` directly,
with no Python process of ours in between.
"""
import os
import shutil
import sys
import tempfile

from metaflow.decorators import StepDecorator
from metaflow.exception import MetaflowException

from . import scheduled
from .binary import find_binary
from .spec import write_spec

WORKLOAD_ENV = "METAFLOW_SANDBOX_WORKLOAD"
BACKEND_ENV = "METAFLOW_SANDBOX_BACKEND"
DEFAULT_BACKEND = "local"
# The sizes a step gets when neither this decorator nor @resources names
# one.  They reach mfsandbox as flags, marked as defaults in the spec: it
# applies them where the backend can and drops them silently elsewhere.
RESOURCE_DEFAULTS = {"cpu": "1", "memory": "1024", "disk": None, "gpu": None}
SIZE_FLAGS = ("cpu", "memory", "disk")


class SandboxException(MetaflowException):
    headline = "Sandbox error"


class SandboxDecorator(StepDecorator):
    """Runs the step's task in a sandbox (local bubblewrap, Daytona or E2B).

    Parameters: backend (default $METAFLOW_SANDBOX_BACKEND, else "local"),
    cpu (1), memory (MB, 1024), disk (GB), gpu, image, timeout (s, 600),
    env (dict of extra non-secret environment variables).
    """

    name = "sandbox"
    default_backend = None
    defaults = {
        "backend": None,
        "cpu": None,  # RESOURCE_DEFAULTS when unset
        "memory": None,
        "disk": None,
        "gpu": None,
        "image": None,
        "timeout": 600,
        "env": {},
    }
    supports_conda_environment = True
    target_platform = "linux-64"

    # Shared by every alias: one package file and one temp dir per run.
    _tempdir = None
    package_path = None
    package_url = None
    package_sha = None
    package_metadata = None

    def init(self):
        if not self.attributes.get("backend"):
            self.attributes["backend"] = self.default_backend
        if self.attributes.get("env") is None:
            self.attributes["env"] = {}

    def step_init(self, flow, graph, step, decos, environment, flow_datastore, logger):
        self.step = step
        self.flow_datastore = flow_datastore
        self.environment = environment
        self.logger = logger
        self.decos = decos
        # Chosen here, not at import time, so the variable set for a run counts.
        self.explicit_backend = self.attributes.get("backend") or os.environ.get(BACKEND_ENV)
        self.backend = self.explicit_backend or DEFAULT_BACKEND
        if not isinstance(self.attributes.get("env"), dict):
            raise SandboxException("@%s(env=...) must be a dict of strings" % self.name)
        self._resources(decos)
        self.run_time_limit = int(self.attributes.get("timeout") or 600)
        # The step's @timeout, which mfsandbox raises its deadline above.
        self.step_timeout = None
        if any(d.name == "timeout" for d in decos):
            from metaflow.plugins.timeout_decorator import get_run_time_limit_for_task

            self.step_timeout = int(get_run_time_limit_for_task(decos))
        if os.environ.get(WORKLOAD_ENV):
            return  # inside the sandbox: nothing to check, no provider needed
        if self.backend != "local" and flow_datastore.TYPE == "local":
            raise SandboxException(
                "@%s with backend '%s' needs a datastore the sandbox can reach: run with "
                "--datastore s3 (or set METAFLOW_DEFAULT_DATASTORE=s3 and "
                "METAFLOW_DATASTORE_SYSROOT_S3); only backend 'local' works with the local "
                "datastore" % (self.name, self.backend)
            )
        if any(d.name == "parallel" for d in decos):
            raise SandboxException("@%s does not support @parallel" % self.name)
        scheduler = scheduled.deploying()
        if scheduler:
            scheduled.check_deploy(self, scheduler)
        task = scheduled.scheduled_task(step)
        if task:
            scheduled.launch(self, flow, graph, task)  # does not return

    def _resources(self, decos):
        """Sizes as Metaflow's compute decorators merge them (max of this
        decorator and @resources per field), and which are only defaults."""
        from metaflow.plugins.aws.aws_utils import compute_resource_attributes

        asked = compute_resource_attributes(decos, self, dict.fromkeys(RESOURCE_DEFAULTS))
        merged = {k: v for k, v in RESOURCE_DEFAULTS.items() if v is not None}
        merged.update(asked)
        self.default_sizes = {k for k in SIZE_FLAGS if k in merged and k not in asked}
        self.sizes = {}
        for key in SIZE_FLAGS:
            if merged.get(key) in (None, ""):
                continue
            try:
                value = float(merged[key])
            except (TypeError, ValueError):
                raise SandboxException("@%s: %s=%r is not a number" % (self.name, key, merged[key]))
            if value > 0:
                self.sizes[key] = ("%g" % value) if key == "cpu" else str(int(-(-value // 1)))
        if merged.get("gpu") not in (None, "", "0"):
            self.attributes["gpu"] = str(merged["gpu"])

    def runtime_init(self, flow, graph, package, run_id):
        self.flow = flow
        self.graph = graph
        self.package = package
        self.run_id = run_id
        self._spec_path = None

    def runtime_task_created(
        self, task_datastore, task_id, split_index, input_paths, is_cloned, ubf_context
    ):
        if not is_cloned:
            self._save_package_once(self.flow_datastore, self.package)

    @classmethod
    def _temp(cls):
        base = SandboxDecorator
        if base._tempdir is None:
            base._tempdir = tempfile.mkdtemp(prefix="mfsandbox-")
        return base._tempdir

    @classmethod
    def _save_package_once(cls, flow_datastore, package):
        base = SandboxDecorator
        if base.package_path is not None:
            return
        blob = package.blob
        base.package_url, base.package_sha = flow_datastore.save_data([blob], len_hint=1)[0]
        base.package_metadata = package.package_metadata
        path = os.path.join(cls._temp(), "code-%s.tgz" % base.package_sha)
        with open(path, "wb") as f:
            f.write(blob)
        base.package_path = path

    def runtime_step_cli(self, cli_args, retry_count, max_user_code_retries, ubf_context):
        if retry_count > max_user_code_retries:
            return  # the @catch fallback attempt runs locally, as with @batch
        if os.environ.get(WORKLOAD_ENV):
            return
        # @conda/@pypi would swap in a launcher-side interpreter: the
        # sandbox resolves its own through the spec's executable.
        for deco in self.decos:
            if deco.name in ("conda", "pypi") and hasattr(deco, "interpreter"):
                deco.interpreter = None
        if self._spec_path is None:
            self._spec_path = write_spec(self)
        cmd = self.mfsandbox_argv(find_binary(), self._spec_path)
        cli_args.entrypoint = cmd + [sys.executable] + list(cli_args.entrypoint[1:])

    def mfsandbox_argv(self, binary, spec_path):
        """`mfsandbox run ... --metaflow-spec SPEC --`: the step command follows."""
        cmd = [binary, "run", "--backend", self.backend]
        for key in SIZE_FLAGS:
            if key in self.sizes:
                cmd += ["--" + key, self.sizes[key]]
        if self.attributes.get("gpu"):
            cmd += ["--gpu", str(self.attributes["gpu"])]
        if self.attributes.get("image"):
            cmd += ["--image", str(self.attributes["image"])]
        return cmd + ["--timeout", str(self.run_time_limit), "--metaflow-spec", spec_path, "--"]

    def task_pre_step(
        self, step_name, task_datastore, metadata, run_id, task_id, flow, graph,
        retry_count, max_user_code_retries, ubf_context, inputs,
    ):
        if not os.environ.get(WORKLOAD_ENV):
            return
        self._task_ds = task_datastore
        from metaflow.metadata_provider import MetaDatum

        backend = os.environ.get(BACKEND_ENV, "")
        metadata.register_metadata(
            run_id, step_name, task_id,
            [MetaDatum(field="sandbox-backend", value=backend, type="sandbox-backend",
                       tags=["attempt_id:%d" % retry_count])],
        )
        # Logs reach the datastore while the task runs, so a sandbox killed
        # by its deadline still leaves most of them behind.
        from metaflow.sidecar import Sidecar

        self._log_sidecar = Sidecar("save_logs_periodically")
        self._log_sidecar.start()

    def task_finished(self, step_name, flow, graph, is_task_ok, retry_count, max_retries):
        sidecar = getattr(self, "_log_sidecar", None)
        if sidecar is not None:
            sidecar.terminate()
        if not os.environ.get(WORKLOAD_ENV):
            return
        # With a remote datastore the launcher cannot see our local
        # metadata: ship it through the datastore (mfsandbox relays it).
        if os.environ.get("METAFLOW_SANDBOX_METADATA_RELAY") and getattr(self, "_task_ds", None):
            from metaflow.metadata_provider.util import sync_local_metadata_to_datastore
            from metaflow.metaflow_config import DATASTORE_LOCAL_DIR

            sync_local_metadata_to_datastore(DATASTORE_LOCAL_DIR, self._task_ds)

    def runtime_finished(self, exception):
        base = SandboxDecorator
        if base._tempdir is not None:
            shutil.rmtree(base._tempdir, ignore_errors=True)
            base._tempdir = None
            base.package_path = None


class DaytonaDecorator(SandboxDecorator):
    name = "daytona"
    default_backend = "daytona"
    defaults = dict(SandboxDecorator.defaults)

    def init(self):  # Metaflow calls init() only when the class defines it
        super().init()


class E2BDecorator(SandboxDecorator):
    name = "e2b"
    default_backend = "e2b"
    defaults = dict(SandboxDecorator.defaults)

    def init(self):  # Metaflow calls init() only when the class defines it
        super().init()
