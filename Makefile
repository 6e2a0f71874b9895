# mfsandbox build.  `make` builds ./mfsandbox; `make check` runs every test.
# Sources are found by wildcard so that adding a file under src/ or backends/
# or a tests/unit/test_*.c needs no Makefile edit.

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
BIN     ?= mfsandbox
PKGS    := libcurl jansson libarchive

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# LAZY=1 (default): libcurl and libarchive are not linked; src/net/lazy_curl.c
# and src/util/lazy_archive.c dlopen() them on first use, so a local run does
# not pay for loading them (figures in docs/architecture.md).  LAZY=0: a
# normal link, the lazy files left out (what a packager's ldd expects).
LAZY    ?= 1
ifeq ($(LAZY),0)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
else
PKG_LIBS   := $(shell pkg-config --libs jansson 2>/dev/null) -ldl -lpthread
# The SONAMEs to dlopen(), read from the libraries we compile against.
soname = $(shell objdump -p $$(pkg-config --variable=libdir $(1))/$(1).so 2>/dev/null | \
	awk '$$1 == "SONAME" { print $$2 }')
LAZY_DEFS := $(foreach l,libcurl libarchive,$(if $(call soname,$(l)),\
	-DMFS_$(shell echo $(l) | tr a-z A-Z)_SONAME='"$(call soname,$(l))"'))
endif
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN    := -std=c11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter
CFLAGS  ?= -O2 -g
ALL_CFLAGS := $(WARN) -D_GNU_SOURCE -DMFS_LAZY=$(LAZY) $(LAZY_DEFS) -Iinclude $(PKG_CFLAGS) \
	$(CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS ?=
ALL_LDFLAGS := $(LDFLAGS) $(EXTRA_LDFLAGS)

LIB_SRC  := $(sort $(filter-out src/cli/main.c,$(wildcard src/*/*.c)) $(wildcard backends/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Test-only drivers (build/tests/<name>) that pytest runs against real servers.
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)

VENV    ?= .venv
PY      := $(VENV)/bin/python

.PHONY: all clean check unit venv pytest tools demo install asan valgrind bench bench-scale \
	bench-compare fuzz fuzz-regress fuzz-bins asan-ci
all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libmfs.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/src/cli/main.o $(BUILD)/libmfs.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS) $(ALL_LDFLAGS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libmfs.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libmfs.a $(PKG_LIBS) $(CMOCKA_LIBS) $(ALL_LDFLAGS)

$(BUILD)/tests/%: tests/tools/%.c $(BUILD)/libmfs.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libmfs.a $(PKG_LIBS) $(ALL_LDFLAGS)

tools: $(TOOL_BIN)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# The venv holds the Python side (tests, servers, the extension); rebuilt
# when requirements-dev.txt changes.
$(VENV)/.stamp: requirements-dev.txt
	test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The Metaflow extension (python/), reinstalled when its sources change.  The
# wheel's own copy of mfsandbox is skipped here: tests use the fresh
# ./mfsandbox through MFSANDBOX_BIN.
EXT_SRC := $(shell find python -name '*.py' -o -name pyproject.toml 2>/dev/null)
$(VENV)/.ext-stamp: $(VENV)/.stamp $(EXT_SRC)
	MFSANDBOX_BUNDLE=0 $(PY) -m pip install -q --disable-pip-version-check --no-deps \
		--no-build-isolation ./python
	rm -rf python/build
	touch $@

venv: $(VENV)/.stamp $(VENV)/.ext-stamp

# PYTEST_FILES narrows the run (asan-ci).
PYTEST_FILES ?= tests/py
# MFSANDBOX_BIN / MFS_BUILD_DIR let the tests find the binary and drivers of
# the build under test (`make asan` points them at build-asan).
pytest: all tools venv
	MFSANDBOX_BIN=$(abspath $(BIN)) MFS_BUILD_DIR=$(abspath $(BUILD)) $(PY) -m pytest -q $(PYTEST_FILES)

check: all unit pytest

# Fresh machine: Debian packages, build, venv, then a sample in a local sandbox.
demo:
	scripts/install-deps.sh
	$(MAKE) all venv
	scripts/demo.sh ./$(BIN)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/mfsandbox

# ASan+UBSan build in its own directory, running the unit and integration
# tests against it.  The normal build's test drivers are built too, for
# tests that have not learnt MFS_BUILD_DIR.
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	$(MAKE) tools
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(MAKE) BUILD=build-asan BIN=build-asan/mfsandbox CFLAGS="-O1 -g" \
		EXTRA_CFLAGS="$(SAN_FLAGS)" EXTRA_LDFLAGS="$(SAN_FLAGS)" unit pytest

# libFuzzer harnesses (tests/fuzz/fuzz_*.c), one per parser of outside
# input.  `make fuzz` builds them with clang (scripts/install-deps.sh --fuzz
# installs it) and runs each for FUZZ_S seconds; `make fuzz-regress` replays
# the checked-in corpora once each through tests/fuzz/replay.c, built with the
# usual compiler under ASan+UBSan (no clang needed; CI runs it).
FUZZ_S    ?= 60
FUZZ_CC   ?= clang
FUZZ_SRC  := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=$(BUILD)/fuzz/%)
FUZZ_MAIN ?= tests/fuzz/replay.c

$(BUILD)/fuzz/%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_MAIN) $(BUILD)/libmfs.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(FUZZ_MAIN) $(BUILD)/libmfs.a $(PKG_LIBS) $(ALL_LDFLAGS)

fuzz-bins: $(FUZZ_BIN)

fuzz:
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs $(FUZZ_CC): scripts/install-deps.sh --fuzz" >&2; exit 1; }
	$(MAKE) CC=$(FUZZ_CC) BUILD=build-fuzz FUZZ_MAIN= CFLAGS="-O1 -g" \
		EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -Wno-format-nonliteral" \
		EXTRA_LDFLAGS="-fsanitize=fuzzer,address,undefined" fuzz-bins
	tests/fuzz/run.sh fuzz build-fuzz $(FUZZ_S)

fuzz-regress:
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g" EXTRA_CFLAGS="$(SAN_FLAGS)" \
		EXTRA_LDFLAGS="$(SAN_FLAGS)" fuzz-bins
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		tests/fuzz/run.sh regress build-asan

# What CI runs under ASan+UBSan after `make check`: every unit test, the
# end-to-end files that drive each parser and backend path with the real
# binary (bad input, the local backend, HTTP/S3 clients, the Daytona and E2B
# emulators, the relay), and the fuzz corpora.  The Metaflow flows are left
# to `make asan`: they run the same C paths as these, ten times slower.
ASAN_CI_PYTEST := tests/py/test_bad_input.py tests/py/test_cli_usage.py \
	tests/py/test_cli_local.py tests/py/test_http_client.py tests/py/test_s3_client.py \
	tests/py/test_daytona_cli.py tests/py/test_e2b_cli.py tests/py/test_e2b_faults.py \
	tests/py/test_relay.py tests/py/test_cleanup_bounds.py tests/py/test_hostile_provider.py
asan-ci:
	$(MAKE) tools
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(MAKE) BUILD=build-asan BIN=build-asan/mfsandbox CFLAGS="-O1 -g" \
		EXTRA_CFLAGS="$(SAN_FLAGS)" EXTRA_LDFLAGS="$(SAN_FLAGS)" \
		PYTEST_FILES="$(ASAN_CI_PYTEST)" unit pytest
	$(MAKE) fuzz-regress

# Unit tests and a few real runs under valgrind; any error or leak fails.
VALGRIND := valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible
valgrind: all $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== valgrind $$t"; $(VALGRIND) $$t >/dev/null; done
	tests/valgrind-runs.sh "$(VALGRIND)" ./$(BIN)

# Figures only (no assertions): executor overhead against bare bubblewrap,
# and against a minimal fork+exec+wait wrapper (the floor).
LOCAL_BENCH := build/bench/rusage build/bench/spawn_floor
$(LOCAL_BENCH): build/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

bench: all $(LOCAL_BENCH)
	bench/local_overhead ./$(BIN)

# Figures only: BENCH_N (default 1000) concurrent Daytona runs against the
# emulator, next to the emulator's own service time (docs/performance.md).
build/bench/fanout: bench/fanout.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

bench-scale: all build/bench/fanout venv
	$(PY) bench/daytona_scale.py $(BENCH_N)

# mfsandbox against the original metaflow-sandbox (PyPI) on the Daytona
# emulator: figures only (docs/performance.md).  The original gets its own
# venv; the plot comes from a third one with matplotlib.
ORIG_VENV := build/bench/orig-venv
ORIG_PKGS := metaflow-sandbox==0.1.1 daytona==0.226.1 metaflow==2.19.39 boto3==1.44.5 \
	botocore==1.44.5
PLOT_VENV := build/bench/plot-venv
$(ORIG_VENV)/.stamp:
	rm -rf $(ORIG_VENV)
	/usr/bin/python3 -m venv $(ORIG_VENV)
	$(ORIG_VENV)/bin/python -m pip install -q --disable-pip-version-check $(ORIG_PKGS)
	touch $@

$(PLOT_VENV)/.stamp:
	rm -rf $(PLOT_VENV)
	/usr/bin/python3 -m venv $(PLOT_VENV)
	$(PLOT_VENV)/bin/python -m pip install -q --disable-pip-version-check matplotlib==3.11.2
	touch $@

bench-compare: all venv $(ORIG_VENV)/.stamp $(PLOT_VENV)/.stamp
	bench/daytona_compare
	$(PLOT_VENV)/bin/python bench/plot_compare.py build/bench/daytona_compare.json \
		build/bench/daytona_compare.png

clean:
	rm -rf $(BUILD) build-asan build-fuzz $(BIN)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
