"""docs/adding-a-backend.md's promise, kept by a build: a new provider is one
folder under backends/ and one X(<name>) line in include/mfs/core/backends.h.

A copy of the tracked tree gets backends/acme/ (the doc's own ops.c, taken
from its first C block, beside tests/py/fixtures/acme_backend/) and the
doc's registration block; nothing else is edited.  The copy must build,
pass the layering rule, and the binary must list, probe and refuse through
the new ops table as it does for the real backends."""
import difflib
import os
import pathlib
import re
import shutil
import subprocess

import pytest

import test_structure

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "adding-a-backend.md"
FIXTURE = ROOT / "tests" / "py" / "fixtures" / "acme_backend"
LIST_H = pathlib.Path("include/mfs/core/backends.h")


def c_blocks():
    return re.findall(r"```c\n(.*?)```", DOC.read_text(), re.S)


def copy_tree(dst):
    """The tracked files, and the default build's objects (with their times,
    so that make rebuilds only what the new backend touches)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    for objs in ("src", "backends"):
        if (ROOT / "build" / objs).is_dir():
            shutil.copytree(ROOT / "build" / objs, dst / "build" / objs)


def register(tree):
    """Replaces the list with the doc's block, and checks that this inserts
    exactly one line and changes none."""
    block = next(b for b in c_blocks() if "MFS_BACKEND_LIST" in b)
    path = tree / LIST_H
    old = path.read_text()
    new = re.sub(r"#define MFS_BACKEND_LIST\(X\).*?\n\n", block.rstrip("\n") + "\n\n", old,
                 count=1, flags=re.S)
    diff = [d for d in difflib.ndiff(old.splitlines(), new.splitlines()) if d[:1] in "+-"]
    assert [d.split() for d in diff] == [["+", "X(acme)", "\\"]], diff
    path.write_text(new)


@pytest.fixture(scope="module")
def acme_tree(tmp_path_factory):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout: the copy is of the tracked files")
    tree = tmp_path_factory.mktemp("tree")
    copy_tree(tree)
    folder = tree / "backends" / "acme"
    folder.mkdir()
    for f in FIXTURE.iterdir():
        shutil.copy(f, folder / f.name)
    (folder / "ops.c").write_text(c_blocks()[0])
    register(tree)
    build = subprocess.run(["make", "-j2", "all"], cwd=tree, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-4000:]
    return tree


def acme(tree, *args, **env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("METAFLOW_SANDBOX_BACKEND", "ACME_API_KEY")}
    return subprocess.run([str(tree / "mfsandbox"), *args], capture_output=True, text=True,
                          env={**base, **env}, timeout=60)


def test_new_folder_obeys_the_layers(acme_tree):
    assert test_structure.violations(acme_tree) == []


def test_backends_lists_it_with_its_probe(acme_tree):
    r = acme(acme_tree, "backends")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.split()[:1] == ["acme"])
    assert "Acme cloud sandboxes" in line
    assert "ACME_API_KEY is not set" in r.stdout


def test_run_reaches_its_create_and_exits_with_its_error(acme_tree):
    r = acme(acme_tree, "run", "--backend", "acme", "--", "true")
    assert r.returncode == 202, r.stderr
    assert "ACME_API_KEY is not set" in r.stderr
    r = acme(acme_tree, "run", "--backend", "acme", "--", "true", ACME_API_KEY="k")
    assert r.returncode == 203, r.stderr
    assert "the service is made up" in r.stderr


def test_executor_refuses_from_its_caps_for(acme_tree):
    r = acme(acme_tree, "run", "--backend", "acme", "--gpu", "1", "--", "true", ACME_API_KEY="k")
    assert r.returncode == 202
    assert "acme sandboxes have no GPUs" in r.stderr
    assert "made up" not in r.stderr  # refused before create
