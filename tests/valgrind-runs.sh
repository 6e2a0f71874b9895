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
# A step on S3 with keys only in an AWS profile (the key variables emptied,
# which counts as unset): resolved into the sandbox env (dry run); a missing
# profile and a bad MFSANDBOX_FORWARD_ENV refused before any sandbox.
printf '[ci]\naws_access_key_id=ID\naws_secret_access_key=S\naws_session_token=T\n' >"$code/creds"
step=(-- python3 flow.py --datastore s3 step a --run-id 1 --task-id 2)
AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= AWS_SHARED_CREDENTIALS_FILE=$code/creds AWS_PROFILE=ci \
	check 0 run --dry-run "${step[@]}"
AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= AWS_SHARED_CREDENTIALS_FILE=$code/creds AWS_PROFILE=nope \
	check 202 run "${step[@]}"
MFSANDBOX_FORWARD_ENV='A=b' check 202 run "${step[@]}"

# Daytona against its emulator (stdlib Python only).
emu_out=$(mktemp)
(cd "$(dirname "$0")" && exec python3 -m emulators.daytona) >"$emu_out" 2>&1 &
emu=$!
for _ in $(seq 100); do grep -q '^DAYTONA_API_URL=' "$emu_out" && break; sleep 0.1; done
DAYTONA_API_URL=$(sed -n 's/^DAYTONA_API_URL=//p' "$emu_out")
export DAYTONA_API_URL DAYTONA_API_KEY=dtn_$(printf '0%.0s' $(seq 40))
check 3 run --backend daytona -- sh -c 'echo out; echo err >&2; exit 3'
check 0 run --backend daytona --env A=1 --code "$code" -- python3 main.py
check 204 run --backend daytona --timeout 1 -- sleep 20
check 0 ls --backend daytona
check 202 kill --backend daytona no-such-id
# The error paths: each fault (JSON for POST /_emulator/faults) then a run.
fault() {
	python3 -c 'import sys,urllib.request as u; u.urlopen(u.Request(sys.argv[1], sys.argv[2].encode(), {"Content-Type": "application/json"}))' \
		"${DAYTONA_API_URL%/api}/_emulator/faults" "$1" >/dev/null
}
fault '{"statuses": {"POST /sandbox": [500]}}'
check 203 run --backend daytona -- true
fault '{"statuses": {"POST /sandbox": [0, 502], "GET /toolbox/process/session/*/logs": [0]}}'
check 0 run --backend daytona -- true
fault '{"lose_response": {"POST /toolbox/process/session/*/exec": 1, "DELETE /sandbox/*": 1}}'
check 0 run --backend daytona -- true
# The status read alone ("*" would also match the log-follow request, whose
# 500 only sends the client to polling): command ids are 36 characters.
fault "{\"statuses\": {\"GET /toolbox/process/session/*/command/$(printf '[!/]%.0s' $(seq 36))\": [500]}}"
check 203 run --backend daytona -- true
fault '{"stalls": {"GET /toolbox/process/session/*/logs": [30]}}'
check 204 run --backend daytona --timeout 2 -- sh -c 'echo x; sleep 1'
fault '{"create_delay": 0.4, "build_error": "no such image"}'
check 203 run --backend daytona --image python:9 -- true
fault '{"create_delay": 2, "server_wait": 0.05, "build_error": null}'
check 204 run --backend daytona --timeout 1 -- true
fault '{"create_delay": 0, "server_wait": 30}'
live=$(python3 -c 'import json,sys,urllib.request as u; print(json.load(u.urlopen(sys.argv[1]))["live"])' \
	"${DAYTONA_API_URL%/api}/_emulator/live")
[ "$live" = 0 ] || { echo "daytona sandboxes left: $live" >&2; fail=1; }
kill "$emu"
wait "$emu" 2>/dev/null
rm -f "$emu_out"
unset DAYTONA_API_URL DAYTONA_API_KEY

# E2B against its emulator, faults set in-process (stdlib Python only).
abs_bin=$(realpath "$bin")
(cd "$(dirname "$0")" && exec python3 valgrind_e2b.py "$valgrind" "$abs_bin" "$code") || fail=1

[ -z "$(ls -A "$state")" ] || { echo "sandboxes left in $state" >&2; fail=1; }
exit $fail
