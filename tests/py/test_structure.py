"""Layering rule: arrows point down only, and the folders say which layer a
file is in.

Every C source and header of the product belongs to a layer named by its
folder: src/<layer>/, include/mfs/<layer>/, backends/<name>/ (the backends
layer; each backend its own group) and include/mfs/backend.h (the contract).
A file may include its own group's files and anything of a lower rank;
never a higher rank, never a sibling group of the same rank (one backend may
not include another's files, backends and the relay do not know each other).
Every quoted include must name a file that exists."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)

# Higher rank = higher layer.  Same rank, different group = siblings.
RANK = {"cli": 6, "core": 5, "backends": 4, "relay": 4, "contract": 3, "net": 2, "util": 1}


def layer_of(path, root=ROOT):
    """(group, rank) of a product file, from its folder alone."""
    rel = path.relative_to(root).parts
    if rel[0] == "src" and len(rel) == 3 and rel[1] in RANK and rel[1] not in ("backends", "contract"):
        return rel[1], RANK[rel[1]]
    if rel[0] == "backends" and len(rel) >= 3:
        return "backends/" + rel[1], RANK["backends"]
    if rel[:2] == ("include", "mfs"):
        if rel[2:] == ("backend.h",):
            return "contract", RANK["contract"]
        if len(rel) == 4 and rel[2] in RANK and rel[2] not in ("backends", "contract"):
            return rel[2], RANK[rel[2]]
    raise AssertionError(f"{path.relative_to(root)}: not in a layer folder "
                         f"(src/<{'|'.join(RANK)}>/, backends/<name>/, include/mfs/<layer>/)")


def product_files(root=ROOT):
    files = []
    for top in ("src", "backends", "include"):
        files += [p for p in (root / top).rglob("*") if p.suffix in (".c", ".h")]
    return sorted(files)


def resolve(src, name, root=ROOT):
    local = (src.parent / name).resolve()
    if local.exists():
        return local
    inc = root / "include" / name
    return inc if inc.exists() else None


def violations(root=ROOT):
    bad = []
    for f in product_files(root):
        group, rank = layer_of(f, root)
        for name in INCLUDE.findall(f.read_text(errors="replace")):
            target = resolve(f, name, root)
            if target is None:
                bad.append(f"{f.relative_to(root)}: #include \"{name}\" names no file")
                continue
            tgroup, trank = layer_of(target, root)
            if tgroup != group and trank >= rank:
                bad.append(f"{f.relative_to(root)} ({group}) includes "
                           f"{target.relative_to(root)} ({tgroup})")
    return bad


def test_every_product_file_is_in_a_layer_folder():
    files = product_files()
    assert len(files) > 30
    for f in files:
        layer_of(f)


def test_no_include_points_up_or_sideways():
    assert violations() == []


def test_backend_list_header_is_private_to_the_registry():
    users = [p.relative_to(ROOT).as_posix() for p in product_files() + sorted(ROOT.glob("tests/**/*.c"))
             if "mfs/core/backends.h" in INCLUDE.findall(p.read_text(errors="replace"))]
    assert users == ["src/core/registry.c"]


def write(root, rel, text):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_the_checker_catches_upward_sideways_and_dangling(tmp_path):
    write(tmp_path, "include/mfs/backend.h", '#include "mfs/util/err.h"\n')
    write(tmp_path, "include/mfs/util/err.h", "\n")
    write(tmp_path, "include/mfs/core/executor.h", '#include "mfs/backend.h"\n')
    write(tmp_path, "backends/a/a.c", '#include "mfs/core/executor.h"\n#include "a_priv.h"\n')
    write(tmp_path, "backends/a/a_priv.h", "\n")
    write(tmp_path, "backends/b/b.c", '#include "../a/a_priv.h"\n#include "mfs/backend.h"\n')
    write(tmp_path, "src/util/x.c", '#include "mfs/util/gone.h"\n#include <stdio.h>\n')
    assert violations(tmp_path) == [
        "backends/a/a.c (backends/a) includes include/mfs/core/executor.h (core)",
        "backends/b/b.c (backends/b) includes backends/a/a_priv.h (backends/a)",
        'src/util/x.c: #include "mfs/util/gone.h" names no file',
    ]


def test_a_flat_file_is_not_in_any_layer(tmp_path):
    write(tmp_path, "src/stray.c", "\n")
    with pytest.raises(AssertionError, match="src/stray.c: not in a layer folder"):
        layer_of(tmp_path / "src/stray.c", tmp_path)
