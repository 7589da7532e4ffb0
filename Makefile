# The front door: make setup | run | test | typecheck | clean | distclean (GNU make).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

# mypy's file list lives in pyproject.toml; pass only those of its directories that
# already hold Python files (mypy refuses a directory with none).
MYPY_DIRS := $(foreach d,broker ports,$(if $(shell find $(d) -name '*.py' -print -quit 2>/dev/null),$(d)))

.DEFAULT_GOAL := help
.PHONY: help setup run test test-wasm32 test-arm typecheck fuzz mem bench flash firmware sim-stop clean distclean

help:
	@echo "make setup      create .venv with every Python dependency (incl. micropython), and the"
	@echo "                core compiled by mypyc into build/mypyc when a C compiler is there"
	@echo "make run        CPython broker (the compiled core, built first) on 127.0.0.1:1883 with the"
	@echo "                embedded default config"
	@echo "                (extra arguments: make run ARGS='-v -p 1884')"
	@echo "make test       typecheck, pytest over tests/ (the compiled core when built, then the core"
	@echo "                tests with PURE=1), core tests on MicroPython (64-bit unix port, and"
	@echo "                32-bit webassembly port when node is there)"
	@echo "make typecheck  mypy over broker/ and ports/"
	@echo "make fuzz       property tests (tests/fuzz) at FUZZ_EXAMPLES=20000 examples each"
	@echo "make mem        heap figures of the MicroPython broker, from .py, .mpy and ROMFS (and"
	@echo "                32-bit figures on the webassembly port when node is there)"
	@echo "make bench      benchmarks against mosquitto (BENCH_AMQTT=1: amqtt too); writes docs/benchmarks.md"
	@echo "make flash      BOARD=rp2|esp32|sim [PORT=/dev/ttyACM0]: compile, copy what changed, start the"
	@echo "                broker on the board (BOARD=sim: a virtual board, SIM_PORT=N picks its port;"
	@echo "                a ROMFS image where the firmware has a partition, ROMFS=0: files instead)"
	@echo "make firmware   BOARD=rp2 MICROPY_DIR=DIR: MicroPython for the Pico W with the broker frozen"
	@echo "                in, build/rp2/firmware.uf2 (NATIVE=0: without @micropython.native)"
	@echo "make test-arm   MICROPY_DIR=DIR: the core tests on ARM machine code (MicroPython's QEMU port)"
	@echo "make sim-stop   stop the virtual board that make flash BOARD=sim left running"
	@echo "make clean      remove caches and build output (keeps .venv)"
	@echo "make distclean  clean, and remove .venv and the node_modules of tools/wasm32 and MQTT.js"

# Defined before the first rule that names it: a prerequisite list is expanded when read.
MYPYC := build/mypyc/.built

setup: $(STAMP) $(MYPYC)

# Re-run only when .venv is missing or pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

# The core's routing path compiled by mypyc into build/mypyc, which CPython's broker uses unless
# PURE=1 (ports/cpython/compiled.py); one line and the pure build when there is no C compiler.
$(MYPYC): $(STAMP) $(wildcard broker/*.py) tools/mypyc_build.py
	$(PY) tools/mypyc_build.py --quiet
	@mkdir -p $(@D) && touch $@

run: $(STAMP) $(MYPYC)
	$(PY) -m broker $(ARGS)

typecheck: $(STAMP)
	$(VENV)/bin/mypy $(MYPY_DIRS)

# A hang fails the run instead of stalling it: each pytest test has 300 s (pyproject.toml), and a
# MicroPython run of the core tests, which has no signal to stop one test, MPTEST_TIMEOUT in all.
MPTEST_TIMEOUT ?= 600
MPTEST_HUNG = { rc=$$?; [ $$rc -ne 124 ] || echo "make test: the core tests on $(1) did not end within $(MPTEST_TIMEOUT) s: one hangs (tools/mptest.py -v names the last to pass)" >&2; exit $$rc; }

test: $(STAMP) $(MYPYC) typecheck
	timeout $(MPTEST_TIMEOUT) $(VENV)/bin/micropython tools/mptest.py tests/core || $(call MPTEST_HUNG,MicroPython)
	@if command -v node >/dev/null 2>&1; then $(MAKE) --no-print-directory test-wasm32; \
	elif [ "$$CI" = true ]; then echo "make test: no node command for the 32-bit core tests" >&2; exit 1; \
	else echo "make test: SKIPPED the core tests on 32-bit MicroPython: no node command (Node.js >= 18.3)"; fi
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(MQTTJS); \
	elif [ "$$CI" = true ]; then echo "make test: no npm command to install MQTT.js" >&2; exit 1; \
	else echo "make test: no npm command: the MQTT.js tests will be skipped"; fi
	$(PY) -m pytest -q
	@# the pure build too, when the run above was the compiled one
	PURE=1 $(PY) -m pytest -q tests/core

# The core tests again on a 32-bit MicroPython (the webassembly port, run by Node.js): a board's
# word size, where an int of 2**30 or more is a heap object the heap-lock tests must not see.
WASM32 := tools/wasm32/node_modules/.package-lock.json
$(WASM32): tools/wasm32/package.json tools/wasm32/package-lock.json
	npm ci --prefix tools/wasm32 --no-audit --no-fund --loglevel=error

test-wasm32: $(WASM32)
	timeout $(MPTEST_TIMEOUT) node tools/wasm32/run.mjs --tree broker --tree ports --tree tests/core tools/mptest.py tests/core || $(call MPTEST_HUNG,32-bit MicroPython)

# MQTT.js (npm mqtt), a real MQTT 5 client for tests/integration/test_mqttjs.py, run by Node.js.
MQTTJS := tests/integration/mqttjs/node_modules/.package-lock.json
$(MQTTJS): tests/integration/mqttjs/package.json tests/integration/mqttjs/package-lock.json
	npm ci --prefix tests/integration/mqttjs --no-audit --no-fund --loglevel=error

# The property tests of tests/fuzz with many examples each (make test runs them with a few
# hundred); not part of make test. Failures found are replayed first next time (build/hypothesis).
# Each run prints its seed; FUZZ_SEED=N replays that run (make test or make fuzz).
FUZZ_EXAMPLES ?= 20000
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/fuzz

# A measurement, not a test: prints a table, fails only when the broker cannot start at all.
mem: $(STAMP) $(if $(shell command -v node),$(WASM32))
	$(PY) tools/mem.py

# A measurement, not a test: every broker against the same scenarios, the table printed and
# written to docs/benchmarks.md with its chart. Fails only when messages are lost or duplicated.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

bench: $(BENCH_STAMP) $(MYPYC) build/bench/mqttload
	$(PY) tools/bench/run.py $(BENCH_ARGS)

# The benchmarks' load generator (C: a Python one cannot keep up with mosquitto).
build/bench/mqttload: tools/bench/mqttload.c
	@mkdir -p $(@D)
	gcc -O2 -Wall -Wextra -o $@ $<

# Put the broker on a MicroPython board (tools/flash.py; BOARD, PORT, SIM_PORT, ROMFS, SECRETS and APP
# reach it through the environment). Fails in one line when no board answers.
flash: $(STAMP)
	$(PY) tools/flash.py

# MicroPython built from a source tree with the broker frozen in (tools/firmware.py; BOARD,
# MICROPY_DIR, NATIVE, PICOTOOL_SRC and JOBS reach it through the environment). Without
# MICROPY_DIR it says how to get the sources and stops.
firmware: $(STAMP)
	$(PY) tools/firmware.py

# The core tests on ARM machine code: MicroPython's QEMU port (Cortex-M3) built with the broker
# and the tests frozen in, run under qemu-system-arm (tools/armtest.py; MICROPY_DIR and JOBS reach
# it through the environment).
test-arm: $(STAMP)
	timeout $(MPTEST_TIMEOUT) $(PY) tools/armtest.py || $(call MPTEST_HUNG,ARM under QEMU)

sim-stop:
	@if [ -x $(PY) ]; then $(PY) tools/sim.py stop; fi

clean:
	rm -rf .mypy_cache .pytest_cache build *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o \( -name '*.pyc' -o -name '*.mpy' \) -type f -exec rm -f {} +

distclean: clean
	rm -rf $(VENV) tools/wasm32/node_modules tests/integration/mqttjs/node_modules
