#!/usr/bin/env bash
# `make demo`: show mfsandbox on the local backend with a few sample runs.
# First plain commands, then a Metaflow flow (examples/sandbox_foreach.py) whose
# foreach branches each run in their own local sandbox: local datastore and
# local metadata, no servers, no accounts.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-./mfsandbox}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say "$bin backends"
"$bin" backends

mkdir -p "$work/code"
cat > "$work/code/hello.py" <<'PY'
import os, socket
print(f"hello from {socket.gethostname()} in {os.getcwd()}")
print("GREETING =", os.environ.get("GREETING"))
print("data:", open("input/data.txt").read().strip())
PY
echo "42 apples" > "$work/data.txt"

say "$bin run --backend local --memory 256 --timeout 60 --env GREETING=hi --code code/ --upload data.txt:input/data.txt -- python3 hello.py"
"$bin" run --backend local --memory 256 --timeout 60 --env GREETING=hi \
	--code "$work/code" --upload "$work/data.txt:input/data.txt" -- python3 hello.py

say "$bin run --backend local --network none -- python3 -c 'socket.create_connection((\"1.1.1.1\", 53))'"
set +e
"$bin" run --backend local --network none -- python3 -c 'import socket; socket.create_connection(("1.1.1.1", 53), timeout=2)' 2>&1 | tail -1
echo "exit status: ${PIPESTATUS[0]} (the command's own)"

say "$bin run --backend local --timeout 1 -- sleep 30"
"$bin" run --backend local --timeout 1 -- sleep 30
echo "exit status: $? (204 = --timeout reached)"
set -e

say "$bin run --backend local --dry-run --env AWS_SECRET_ACCESS_KEY=abc -- python3 flow.py step start --run-id 1 --task-id 2"
"$bin" run --backend local --dry-run --env AWS_SECRET_ACCESS_KEY=abc -- \
	python3 flow.py --metadata local step start --run-id 1 --task-id 2

# The flow: the venv has metaflow and the extension (make venv).
py=$(realpath -s "${PYTHON:-.venv/bin/python}")
binabs=$(realpath "$bin")
cp examples/sandbox_foreach.py "$work/"
say "cd $work && python sandbox_foreach.py run --max-workers 4   # square() runs in 4 local sandboxes"
(cd "$work" && METAFLOW_USER=${METAFLOW_USER:-demo} MFSANDBOX_BIN="$binabs" \
	METAFLOW_DEFAULT_DATASTORE=local METAFLOW_DEFAULT_METADATA=local \
	"$py" sandbox_foreach.py --no-pylint run --max-workers 4 2>&1 |
	tee "$work/run.log" | grep -E 'square of|sum of squares|in local sandbox|Done' || { tail -20 "$work/run.log"; true; })

say "Client API: Flow('SandboxForeachFlow').latest_run"
(cd "$work" && METAFLOW_USER=${METAFLOW_USER:-demo} "$py" - <<'PY'
from metaflow import Flow, namespace
namespace(None)
run = Flow("SandboxForeachFlow").latest_run
print("run", run.id, "successful:", run.successful)
for t in sorted(run["square"], key=lambda t: t.data.value):
    print("  %s value=%d backend=%s" % (t.pathspec, t.data.value, t.metadata_dict.get("sandbox-backend")))
print("squares:", run["join"].task.data.squares, "-> sum", sum(run["join"].task.data.squares), "(expected 30)")
PY
)

printf '\ndemo done: every sandbox above was created and removed again (see: %s ls)\n' "$bin"
