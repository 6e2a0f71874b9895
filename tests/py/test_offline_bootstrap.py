"""Our side of @pypi/@conda: an environment's bootstrap commands run inside
the local sandbox, after the code package is extracted and before the step,
and the step runs with what they installed.  Metaflow's own pypi/conda
environments need micromamba and conda channels, which cannot be reached
here (docs/testing.md), so a test-only environment (tests/py/mf_ext) installs
a wheel built here and shipped in the code package, with pip and no network."""
import base64
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")


def build_wheel(where):
    name, version = "mfs_offline_probe", "1.0"
    files = {
        "%s/__init__.py" % name: b'VALUE = "installed offline in the sandbox"\n',
        "%s-%s.dist-info/METADATA" % (name, version):
            b"Metadata-Version: 2.1\nName: mfs_offline_probe\nVersion: 1.0\n",
        "%s-%s.dist-info/WHEEL" % (name, version):
            b"Wheel-Version: 1.0\nGenerator: mfsandbox-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record_path = "%s-%s.dist-info/RECORD" % (name, version)
    record.append(record_path + ",,")
    wheel = where / ("%s-%s-py3-none-any.whl" % (name, version))
    with zipfile.ZipFile(wheel, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
        z.writestr(record_path, "\n".join(record) + "\n")
    return wheel


CLIENT = """
import json, sys
from metaflow import Run, namespace
namespace(None)
t = Run(sys.argv[1])["start"].task
print(json.dumps({"value": t.data.value, "location": t.data.location, "stdout": t.stdout,
                  "ok": t.successful}))
"""


def test_bootstrap_commands_install_a_wheel_offline_inside_the_sandbox(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(HERE / "mf_flows" / "offline_env_flow.py", work / "flow.py")
    build_wheel(work)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("METAFLOW_", "MFSANDBOX_", "AWS_"))}
    env.update(METAFLOW_USER="tester", METAFLOW_HOME=str(tmp_path), PYTHONUNBUFFERED="1",
               METAFLOW_DEFAULT_DATASTORE="local", METAFLOW_DEFAULT_METADATA="local",
               METAFLOW_DATASTORE_SYSROOT_LOCAL=str(work),
               MFSANDBOX_BIN=str(ROOT / "mfsandbox"),
               MFSANDBOX_LOCAL_STATE_DIR=str(tmp_path / "state"),
               PYTHONPATH=str(HERE / "mf_ext"),
               # `python` in bootstrap commands is the image's interpreter:
               # here the venv's, which the local sandbox sees.
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    # The package exists only as the wheel: the launcher cannot import it.
    probe = subprocess.run([sys.executable, "-c", "import mfs_offline_probe"], env=env,
                           cwd=tmp_path, capture_output=True)
    assert probe.returncode != 0
    r = subprocess.run([sys.executable, "flow.py", "--no-pylint", "--environment", "offlinepip",
                        "--package-suffixes", ".py,.whl", "run", "--run-id-file", "run_id"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = (work / "run_id").read_text().strip()
    c = subprocess.run([sys.executable, "-c", CLIENT, "OfflineEnvFlow/" + run], env=env,
                       cwd=work, capture_output=True, text=True, timeout=120)
    assert c.returncode == 0, c.stderr
    seen = json.loads(c.stdout)
    assert seen["ok"] and seen["value"] == "installed offline in the sandbox"
    # Installed by the bootstrap into the sandbox's work dir, not found elsewhere.
    assert "/offline-env/mfs_offline_probe/__init__.py" in seen["location"]
    assert not str(seen["location"]).startswith(str(work))
    # The bootstrap's echo went through the task's captured logs.
    assert "Bootstrapping offline environment..." in seen["stdout"]
