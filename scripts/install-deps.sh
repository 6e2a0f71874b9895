#!/usr/bin/env bash
# Installs the Debian packages mfsandbox builds and tests with, only if missing.
# Used by `make demo` and .ci/run; safe to run again.  `--fuzz` also
# installs clang (libFuzzer) for `make fuzz`; nothing at run time needs it.
set -euo pipefail
pkgs=(build-essential pkg-config bubblewrap libcurl4-openssl-dev libjansson-dev
      libcmocka-dev libarchive-dev valgrind python3-venv)
[ "${1:-}" = --fuzz ] && pkgs+=(clang)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
