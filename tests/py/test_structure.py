"""Layering rule: arrows point down only.  Backends never include the
executor, CLI or registry; the HTTP/JSON/S3/relay helpers never include the
executor or CLI."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)

ABOVE_BACKENDS = {"mfs/executor.h", "mfs/cli.h", "mfs/registry.h", "mfs/backends.h",
                  "cli_internal.h"}
ABOVE_HELPERS = {"mfs/executor.h", "mfs/cli.h", "mfs/registry.h", "mfs/backends.h",
                 "cli_internal.h"}


def includes(path):
    return set(INCLUDE.findall(path.read_text(errors="replace")))


def offenders(files, forbidden, root=ROOT):
    bad = []
    for f in files:
        hit = includes(f) & forbidden
        if hit:
            bad.append(f"{f.relative_to(root)} includes {sorted(hit)}")
    return bad


def helper_files():
    src = ROOT / "src"
    pats = ["http*.c", "s3*.c", "json*.c", "relay*.c", "sigv4*.c"]
    files = {p for pat in pats for p in src.glob(pat)}
    inc = ROOT / "include" / "mfs"
    hdrs = {p for pat in ["http*.h", "s3*.h", "json*.h", "relay*.h", "sigv4*.h"] for p in inc.glob(pat)}
    return sorted(files | hdrs)


def test_backends_do_not_reach_up():
    files = sorted((ROOT / "backends").glob("*.[ch]"))
    assert files, "no backends found"
    assert offenders(files, ABOVE_BACKENDS) == []


def test_lower_helpers_do_not_reach_up():
    assert offenders(helper_files(), ABOVE_HELPERS) == []


def test_backend_list_header_is_private_to_the_registry():
    users = [p.relative_to(ROOT).as_posix() for p in sorted(ROOT.glob("**/*.[ch]"))
             if ".venv" not in p.parts and "mfs/backends.h" in includes(p)]
    assert users == ["src/registry.c"]


def test_the_checker_catches_an_upward_include(tmp_path):
    bad = tmp_path / "evil.c"
    bad.write_text('#include "mfs/executor.h"\n')
    good = tmp_path / "good.c"
    good.write_text('#include "mfs/backend.h"\n#include <stdio.h>\n')
    assert offenders([bad, good], ABOVE_BACKENDS, tmp_path) == ["evil.c includes ['mfs/executor.h']"]
