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


# A function body longer than this needs a reason, in a comment right above
# it that says why it is long ("Long on purpose: ...").
MAX_FUNCTION_LINES = 80


def long_functions(root=ROOT, limit=MAX_FUNCTION_LINES):
    """'path:line name (N lines)' for each function over limit lines whose
    comment right above does not say why it is long.  Functions are found by our
    style: the signature starts in column 0, '{' and '}' stand alone there."""
    bad = []
    files = sorted(p for top in ("src", "backends") for p in (root / top).rglob("*.c"))
    for f in files:
        lines = f.read_text(errors="replace").split("\n")
        start = None
        for i, line in enumerate(lines):
            if line == "{":
                j = i - 1
                while j > 0 and not re.match(r"[A-Za-z_]", lines[j]):
                    j -= 1
                start = j
            elif line == "}" and start is not None:
                n = i - start + 1
                k = start - 1
                while k > 0 and lines[k].startswith((" *", "/*")) and not lines[k].startswith("/*"):
                    k -= 1
                above = " ".join(lines[k:start]) if start > 0 else ""
                if n > limit and "long" not in above.lower():
                    name = re.search(r"(\w+)\s*\(", lines[start])
                    bad.append(f"{f.relative_to(root)}:{start + 1} "
                               f"{name.group(1) if name else lines[start]} ({n} lines)")
                start = None
    return bad


def test_long_functions_say_why():
    assert long_functions() == []


def test_the_length_check_catches_a_long_function(tmp_path):
    body = "\n".join("\tx++;" for _ in range(MAX_FUNCTION_LINES))
    write(tmp_path, "src/util/a.c", f"static int a(void)\n{{\n{body}\n}}\n\n"
          f"/* Long on purpose: one table,\n * read top to bottom. */\nint b(int x,\n      int y)\n{{\n{body}\n}}\n"
          "int c(void)\n{\n\treturn 0;\n}\n")
    write(tmp_path, "backends/x/b.c", "\n")
    assert long_functions(tmp_path) == ["src/util/a.c:1 a (83 lines)"]
