"""@sandbox under Metaflow's production schedulers.

Layer: Metaflow integration.  Argo Workflows and Step Functions compile each
step into a container (pod, Batch job) that runs `python flow.py ... step`
itself: Metaflow's local runtime, where `runtime_step_cli` hands a task to
mfsandbox, is not there.  So when a @sandbox step's task starts in a process
that is neither inside a sandbox nor the @catch fallback attempt, the task is
handed to `mfsandbox run` from `step_init`, before Metaflow registers
anything, opens a datastore or imports user step code: the container becomes
the launcher (spec, code package, metadata relay), exactly as the laptop is
for `run`, and its process exits with the task's status.

The scheduler's own bookkeeping decorators (`argo_workflows_internal`,
`step_functions_internal`) stay in the container: they write Argo's output
parameters under /mnt/out and Step Functions' DynamoDB rows, which a sandbox
cannot reach.  They run here after the sandboxed task succeeded, on the
task's results read back from the datastore.
"""
import hashlib
import os
import signal
import subprocess
import sys

from metaflow.exception import MetaflowException

# Deploy commands that compile a flow for a scheduler -> how it is named.
SUPPORTED = {"argo-workflows": "Argo Workflows", "step-functions": "AWS Step Functions"}
# Airflow's DAG runs the same step command in KubernetesPodOperator pods,
# but its task-id and retry templating are not exercised by any test here:
# refused at deploy time rather than deployed unverified.
UNSUPPORTED = {"airflow": "Airflow"}
# Decorators a scheduler attaches to describe the container, not the task:
# left out of the sandboxed command; the bookkeeping ones run in the container.
CONTAINER_DECOS = ("kubernetes", "batch")
BOOKKEEPING_DECOS = ("argo_workflows_internal", "step_functions_internal", "airflow_internal")


class SandboxScheduleError(MetaflowException):
    headline = "Sandbox under a scheduler"


def _click_ctx():
    from metaflow._vendor import click

    return click.get_current_context(silent=True)


def cli_words():
    """The words after Metaflow's top-level options (`step NAME ...`,
    `argo-workflows create ...`), or []."""
    ctx = _click_ctx()
    while ctx is not None and not hasattr(ctx, "saved_args"):
        ctx = ctx.parent
    return list(getattr(ctx, "saved_args", None) or [])


def deploying():
    """The scheduler command being deployed to (`argo-workflows`, ...) or None."""
    words = cli_words()
    if len(words) >= 2 and words[1] == "create" and words[0] in set(SUPPORTED) | set(UNSUPPORTED):
        return words[0]
    return None


def check_deploy(deco, scheduler):
    """Refuses, with one line naming the step, what would deploy an
    unsandboxed or unusable @sandbox step."""
    if scheduler in UNSUPPORTED:
        raise SandboxScheduleError(
            "step '%s': @%s is not supported with %s: its tasks would run unsandboxed; "
            "deploy with argo-workflows or step-functions, or remove @%s"
            % (deco.step, deco.name, UNSUPPORTED[scheduler], deco.name))
    if not deco.attributes.get("backend"):
        raise SandboxScheduleError(
            "step '%s': @%s needs its backend written in the flow for %s "
            "(@%s(backend=\"daytona\"), @daytona, @e2b or --with %s:backend=NAME): "
            "$METAFLOW_SANDBOX_BACKEND is not seen by the scheduled tasks, and "
            "backend 'local' needs bubblewrap in the task image, so it is never a default there"
            % (deco.step, deco.name, SUPPORTED[scheduler], deco.name, deco.name))


def _option(words, name):
    """Value of `--name V` / `--name=V` in words, or None."""
    for i, w in enumerate(words):
        if w == name and i + 1 < len(words):
            return words[i + 1]
        if w.startswith(name + "="):
            return w[len(name) + 1:]
    return None


def scheduled_task(step):
    """(run_id, task_id, retry_count, max_user_code_retries) when this
    process is the `step` command of `step` outside any sandbox and not a
    @catch fallback attempt, else None."""
    from .sandbox_decorator import WORKLOAD_ENV

    if os.environ.get(WORKLOAD_ENV):
        return None
    words = cli_words()
    if len(words) < 2 or words[0] != "step" or words[1] != step:
        return None
    try:
        retry = int(_option(words, "--retry-count") or 0)
        max_retries = int(_option(words, "--max-user-code-retries") or 0)
    except ValueError:
        raise SandboxScheduleError("step '%s': --retry-count and --max-user-code-retries must "
                                   "be numbers" % step)
    if retry > max_retries:
        return None  # @catch's fallback runs in place, as under the local runtime
    return _option(words, "--run-id"), _option(words, "--task-id"), retry, max_retries


def _with_name(spec):
    return spec.split(":", 1)[0].strip()


def sandboxed_argv(argv):
    """The step command for the sandbox: the container's own argv without
    the scheduler's container/bookkeeping decorators, and with input paths
    read from the container's --input-paths-filename (a file the sandbox
    does not have)."""
    out, i = [], 0
    drop = set(CONTAINER_DECOS) | set(BOOKKEEPING_DECOS)
    while i < len(argv):
        w = argv[i]
        if w == "--with" and i + 1 < len(argv) and _with_name(argv[i + 1]) in drop:
            i += 2
            continue
        if w.startswith("--with=") and _with_name(w[7:]) in drop:
            i += 1
            continue
        if w == "--input-paths-filename" and i + 1 < len(argv):
            with open(argv[i + 1], encoding="utf-8") as f:
                out += ["--input-paths", f.read().strip(" \n\"'")]
            i += 2
            continue
        out.append(w)
        i += 1
    return out


def code_package(deco, tmpdir):
    """The code package as a local file (the C side uploads it into the
    sandbox): the container's own ./job.tar when its sha1 matches, else
    fetched from the datastore."""
    sha, url = os.environ.get("METAFLOW_CODE_SHA"), os.environ.get("METAFLOW_CODE_URL")
    if not sha or not url:
        raise SandboxScheduleError(
            "step '%s': METAFLOW_CODE_SHA/METAFLOW_CODE_URL are not set: this task was not "
            "started by a Metaflow scheduler deployment" % deco.step)
    path = os.path.join(tmpdir, "code-%s.tgz" % sha)
    if os.path.isfile("job.tar"):
        with open("job.tar", "rb") as f:
            blob = f.read()
        if hashlib.sha1(blob).hexdigest() != sha:
            blob = None
    else:
        blob = None
    if blob is None:
        ((_, blob),) = list(deco.flow_datastore.load_data([sha], force_raw=True))
    with open(path, "wb") as f:
        f.write(blob)
    return sha, url, path


def _register(metadata, run_id, step, task_id, retry):
    # The launcher registers the task, as Metaflow's runtime does for `run`:
    # the sandbox writes local metadata, relayed here afterwards.
    if metadata.TYPE == "service":
        metadata.register_run_id(run_id)
        metadata.register_task_id(run_id, step, task_id, retry)


def _run_forwarding_signals(cmd):
    """Runs cmd with our stdio; SIGTERM/SIGINT/SIGHUP sent to the container
    reach mfsandbox, which removes its sandbox."""
    child = subprocess.Popen(cmd)

    def forward(signum, _frame):
        try:
            child.send_signal(signum)
        except OSError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    return child.wait()


def _bookkeeping(deco, flow, graph, metadata, run_id, task_id, retry, max_retries):
    """The scheduler's bookkeeping decorators, here in the container, on the
    finished task's results."""
    books = [d for d in deco.decos if d.name in BOOKKEEPING_DECOS]
    if not books:
        return
    from metaflow import current

    tds = deco.flow_datastore.get_task_datastore(run_id, deco.step, task_id, attempt=retry,
                                                 mode="r")
    for name in ("_foreach_num_splits", "_transition"):
        setattr(flow, name, tds[name] if name in tds else None)
    current._set_env(flow=flow, run_id=run_id, step_name=deco.step, task_id=task_id,
                     retry_count=retry, metadata_str=metadata.metadata_str(), is_running=True)
    for d in books:
        d.task_pre_step(deco.step, tds, metadata, run_id, task_id, flow, graph, retry,
                        max_retries, None, [])
        d.task_finished(deco.step, flow, graph, True, retry, max_retries)


def launch(deco, flow, graph, task):
    """Runs this scheduled task through mfsandbox and exits with its status."""
    from .binary import find_binary
    from .spec import write_spec

    run_id, task_id, retry, max_retries = task
    ctx = _click_ctx()
    obj = ctx.find_root().obj
    if not deco.explicit_backend:
        raise SandboxScheduleError(
            "step '%s': no sandbox backend for this scheduled task: write it in the flow "
            "(@%s(backend=...), @daytona, @e2b) and deploy again" % (deco.step, deco.name))
    binary = find_binary()
    deco.flow, deco.run_id = flow, run_id
    sha, url, path = code_package(deco, deco._temp())
    from .sandbox_decorator import SandboxDecorator as base  # shared by every alias

    base.package_sha, base.package_url, base.package_path = sha, url, path
    base.package_metadata = os.environ.get("METAFLOW_CODE_METADATA")
    spec = write_spec(deco)
    _register(obj.metadata, run_id, deco.step, task_id, retry)
    cmd = deco.mfsandbox_argv(binary, spec) + [sys.executable] + sandboxed_argv(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    rc = _run_forwarding_signals(cmd)
    if rc == 0:
        _bookkeeping(deco, flow, graph, obj.metadata, run_id, task_id, retry, max_retries)
    deco.runtime_finished(None)
    for side in (obj.event_logger, obj.monitor):
        side.terminate()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
