#!/usr/bin/env bash
# Runs the harnesses built in BUILD/fuzz/ (see the Makefile's fuzz targets).
#   run.sh fuzz BUILD SECONDS  libFuzzer, SECONDS per harness; new inputs go
#                              to BUILD/fuzz/corpus/NAME, a crash or leak to
#                              tests/fuzz/corpus/NAME/ (check it in: it is a
#                              regression case from then on)
#   run.sh regress BUILD       each checked-in input once (replay.c driver)
# Prints one line per harness; exits 1 if any harness failed.
set -uo pipefail
mode=$1 build=$2 secs=${3:-60}
cd "$(dirname "$0")/../.."
failed=()
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	name=${name#fuzz_}
	bin=$build/fuzz/$name
	corpus=tests/fuzz/corpus/$name
	log=$build/fuzz/$name.log
	if [ "$mode" = regress ]; then
		if "$bin" "$corpus" >"$log" 2>&1; then
			echo "fuzz-regress $name: $(tail -1 "$log" | sed 's/^replay: //')"
		else
			echo "fuzz-regress $name: FAILED (see $log)"; tail -20 "$log"; failed+=("$name")
		fi
		continue
	fi
	mkdir -p "$build/fuzz/corpus/$name"
	dict=()
	[ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
	if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
		-artifact_prefix="$corpus/" "${dict[@]}" "$build/fuzz/corpus/$name" "$corpus" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
		echo "fuzz $name: ${runs:-?} runs in ${secs}s, $cov, clean"
	else
		echo "fuzz $name: FAILED, input kept in $corpus/ (see $log)"
		grep -m3 -E 'ERROR|SUMMARY' "$log"; failed+=("$name")
	fi
done
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
