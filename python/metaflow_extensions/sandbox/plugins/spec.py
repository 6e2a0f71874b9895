"""The JSON spec handed to `mfsandbox run --metaflow-spec FILE`.

Layer: Metaflow integration.  Written once per (run, step) in the
decorator's temp dir.  It holds what only Metaflow can compute, as facts;
every decision on them is mfsandbox's (src/core/metaflow_task.c): which
credentials reach the sandbox (copied from its own environment, see
src/core/forward_env.c), which config names look secret and stay out, local
metadata and the relay, the step's @timeout plus set-up room, whether the
decorator's default sizes apply on a backend, and whether the launcher's own
interpreter runs the step (a backend on this machine).  Format:
docs/architecture.md "Metaflow integration".
"""
import json
import os
import sys

SPEC_VERSION = 1

# Metaflow config passed on when set (env or Metaflow config file), the
# same families @batch/@kubernetes forward.
_CONFIG_PREFIXES = (
    "METAFLOW_DEFAULT_DATASTORE",
    "METAFLOW_DATASTORE_SYSROOT_",
    "METAFLOW_DATATOOLS_",
    "METAFLOW_S3_",
    "METAFLOW_CARD_",
    "METAFLOW_CONDA",
    "METAFLOW_DEBUG_",
    "METAFLOW_OTEL_",
    "METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE",
)
# Client libraries Metaflow's remote bootstrap installs for each datastore.
_DEPENDENCIES = {"s3": ["boto3", "requests"]}


def _config_env():
    """Set Metaflow config of the families above, unfiltered: mfsandbox
    drops the names that look secret."""
    from metaflow.metaflow_config_funcs import config_values

    out = {}
    for name, value in config_values():
        if value is None or not name.startswith(_CONFIG_PREFIXES):
            continue
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def _user():
    from metaflow.util import get_username

    # A root sandbox cannot tell who launched the run: say it explicitly.
    return os.environ.get("METAFLOW_USER") or get_username() or "mfsandbox"


def build_spec(deco):
    """The spec as a dict; `deco` is the step's SandboxDecorator."""
    from metaflow.package import MetaflowPackage

    ds = deco.flow_datastore
    ds_type = ds.TYPE
    ds_root = ds.datastore_root
    pkg_meta = deco.package_metadata
    post = MetaflowPackage.get_post_extract_env_vars(pkg_meta, dest_dir="$(pwd)")

    executable = deco.environment.executable(deco.step) or "python"

    env = {
        "METAFLOW_DEFAULT_DATASTORE": ds_type,
        "METAFLOW_USER": _user(),
        "METAFLOW_RUNTIME_ENVIRONMENT": "sandbox-" + deco.backend,
        "METAFLOW_SANDBOX_WORKLOAD": "1",
        "METAFLOW_SANDBOX_BACKEND": deco.backend,
        "METAFLOW_FLOW_FILENAME": os.path.basename(sys.argv[0]),
        "METAFLOW_CODE_URL": deco.package_url or "",
        "METAFLOW_CODE_SHA": deco.package_sha or "",
        "METAFLOW_CODE_DS": ds_type,
        "METAFLOW_CODE_METADATA": pkg_meta or "",
    }
    rw_paths = []
    if ds_type == "local":
        # Bound read-write into the local sandbox: artifacts and local
        # metadata land where the launcher reads them.
        env["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = os.path.dirname(ds_root)
        rw_paths.append(ds_root)
    else:
        env["METAFLOW_DATASTORE_SYSROOT_%s" % ds_type.upper()] = ds_root
    for deco_ in deco.decos:
        if deco_.name == "environment":
            env.update({k: str(v) for k, v in (deco_.attributes.get("vars") or {}).items()})
    env.update({k: str(v) for k, v in deco.attributes["env"].items()})

    return {
        "version": SPEC_VERSION,
        "flow_name": deco.flow.name,
        "datastore": {"type": ds_type, "root": ds_root},
        "code_package": {
            "path": deco.package_path,
            "url": deco.package_url,
            "sha": deco.package_sha,
            "metadata": pkg_meta,
        },
        "executable": executable,
        "launcher_python": sys.executable,
        "bootstrap_commands": list(deco.environment.bootstrap_commands(deco.step, ds_type)),
        "dependencies": _DEPENDENCIES.get(ds_type, []),
        "post_extract_env": post,
        "env": env,
        "config_env": _config_env(),
        "rw_paths": rw_paths,
        "default_sizes": sorted(deco.default_sizes),
        "step_timeout": deco.step_timeout,
    }


def write_spec(deco):
    spec = build_spec(deco)
    path = os.path.join(deco._temp(), "spec-%s-%s.json" % (deco.run_id, deco.step))
    tmp = path + ".tmp"
    # Only the user reads it: config_env is Metaflow's config unfiltered.
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(spec, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path
