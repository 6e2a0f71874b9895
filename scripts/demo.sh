#!/usr/bin/env bash
# `make demo`: show mfsandbox on the local backend with a few sample runs.
# (Until the Metaflow extension lands this runs plain commands; then a flow.)
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

printf '\ndemo done: every sandbox above was created and removed again (see: %s ls)\n' "$bin"
