#!/usr/bin/env bash
# `make valgrind`, second half: real mfsandbox runs under valgrind.  Each must
# give its documented status and valgrind no error or leak (valgrind exits 99
# on an error, which no expected status equals).
set -uo pipefail
valgrind=$1
bin=$2
state=$(mktemp -d /var/tmp/mfs-valgrind-XXXXXX)
code=$(mktemp -d)
trap 'rm -rf "$state" "$code"' EXIT
export MFSANDBOX_LOCAL_STATE_DIR=$state METAFLOW_SANDBOX_BACKEND=local
echo 'print("ok")' > "$code/main.py"
# valgrind's own error status, distinct from every status we expect
vg="$valgrind --error-exitcode=99"
fail=0

check() {
	local want=$1
	shift
	$vg "$bin" "$@" >/dev/null 2>"$state.err"
	local got=$?
	if [ "$got" != "$want" ]; then
		echo "valgrind run FAILED (want $want, got $got): mfsandbox $*" >&2
		cat "$state.err" >&2
		fail=1
	else
		echo "ok ($got): mfsandbox $*"
	fi
	rm -f "$state.err"
}

check 0 backends
check 0 run -- echo hello
check 3 run -- sh -c 'echo out; echo err >&2; exit 3'
check 0 run --memory 128 --env A=1 --code "$code" --upload "$code/main.py:x/m.py" -- python3 main.py
check 204 run --timeout 1 -- sleep 20
check 0 run --dry-run --env SECRET_TOKEN=x -- python3 flow.py step a --run-id 1 --task-id 2
check 202 run --cpu nope -- true
check 202 run --backend daytona -- true
check 0 run --keep --quiet -- true
check 0 ls
check 0 kill --stale
check 202 kill no-such-id
[ -z "$(ls -A "$state")" ] || { echo "sandboxes left in $state" >&2; fail=1; }
exit $fail
