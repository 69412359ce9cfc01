# SleepEdge — top-level entry points. `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
SLEEPEDGE := $(VENV)/bin/sleepedge
STAMP     := $(VENV)/.installed
APT_PKGS  := gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi qemu-system-arm
BOARD     ?= qemu
PORT      ?=
EPOCHS    ?=
OUT       ?= reports/demo
EDF       ?=
HYPNO     ?=
CHANNEL   ?=
STAGE_SECONDS ?=
CODES     ?=
SLEEP_EDF ?=
# GSSC (bench-real's outside reference) needs PyTorch: its own environment, never the main one.
GSSC_VENV ?= .venv-gssc
THRESHOLD ?=
# Models folder every target uses: models/ (shipped) or a `sleepedge adapt` output.
MODELS    ?= models
MODELS_ABS = $(abspath $(MODELS))
PYTEST_ARGS ?=

.PHONY: help setup apt venv gssc-venv test demo train bench bench-accuracy bench-device bench-real bench-randomization firmware flash headers clean models-check

help:
	@echo "make demo          build firmware, boot the emulated STM32F405, stream a night, print the summary"
	@echo "make test          run the test suite (installs what it needs)"
	@echo "make train         reproduce models/ on the default synthetic corpus"
	@echo "make train SLEEP_EDF=DIR   the same on a Sleep-EDF download (sleepedge data fetch --out DIR)"
	@echo "make bench         accuracy + device + real-EEG benchmarks (reports/)"
	@echo "make bench-randomization  each randomization family, synthetic vs DREAMS (reports/bench-randomization/)"
	@echo "make bench-real    real EEG (DREAMS, 4 people): edge model vs YASA and GSSC (reports/bench-real/)"
	@echo "make firmware      build firmware/build/qemu/firmware.elf"
	@echo "make flash BOARD=qemu|esp32dev|nucleo_f446re [PORT=...]"
	@echo "  firmware, flash and demo take MODELS=DIR (default models; e.g. a \`sleepedge adapt\` output)"
	@echo "make setup         apt packages (when missing) and $(VENV) with pinned versions"

setup: apt venv

# Install the cross toolchain and QEMU only when a tool is missing (needs root or sudo).
apt:
	@missing=""; \
	command -v arm-none-eabi-gcc >/dev/null || missing=1; \
	command -v qemu-system-arm  >/dev/null || missing=1; \
	test -f /usr/lib/arm-none-eabi/newlib/libc.a -o -d /usr/lib/arm-none-eabi/newlib || missing=1; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "installing $(APT_PKGS)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PKGS); \
	fi

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

headers: venv
	$(SLEEPEDGE) gen-headers

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

models-check:
	@test -f "$(MODELS_ABS)/edge/model_data.c" || { echo "MODELS=$(MODELS): no edge/model_data.c there (a models folder: models/ or a \`sleepedge adapt\` output)" >&2; exit 2; }

firmware: apt models-check
	$(MAKE) -C firmware qemu MODEL_DIR=$(MODELS_ABS)/edge

flash: setup models-check
	$(MAKE) -C firmware flash BOARD=$(BOARD) PORT=$(PORT) MODEL_DIR=$(MODELS_ABS)/edge

demo: setup firmware
	$(PY) -m host_tools.demo --out $(OUT) --models $(MODELS_ABS) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(EDF),--edf $(EDF)) $(if $(HYPNO),--hypno $(HYPNO)) $(if $(THRESHOLD),--threshold $(THRESHOLD)) $(if $(CHANNEL),--channel $(CHANNEL)) $(if $(STAGE_SECONDS),--stage-seconds $(STAGE_SECONDS)) $(if $(CODES),--codes $(CODES))

train: setup
	$(PY) -m host_tools.pipeline $(if $(SLEEP_EDF),--sleep-edf $(SLEEP_EDF)) $(if $(filter 1,$(RANDOMIZE)),--randomize) $(if $(filter 1,$(AUGMENT)),--augment)

bench: bench-accuracy bench-device bench-real bench-randomization

gssc-venv: $(GSSC_VENV)/.installed

$(GSSC_VENV)/.installed: requirements-gssc.lock
	@test -x $(GSSC_VENV)/bin/python || python3 -m venv $(GSSC_VENV)
	$(GSSC_VENV)/bin/python -m pip install -q -r requirements-gssc.lock
	@touch $@

# Real EEG: the DREAMS people in ../shared, read in place; reports only (nothing derived is committed).
bench-real: setup gssc-venv
	$(SLEEPEDGE) bench real --models $(MODELS) --out reports/bench-real --gssc-python $(GSSC_VENV)/bin/python $(if $(NESTED),--nested)

# Each randomization family on/off, synthetic test subjects and DREAMS side by side. Its corpora
# (data/ablation/, not committed) are generated on the first run and reused after.
bench-randomization: setup
	$(SLEEPEDGE) bench randomization --init $(MODELS)/edge/float.keras --out reports/bench-randomization

# The benchmark corpus is regenerated (deterministically) when missing: it is not committed.
bench-accuracy: setup
	$(PY) -m host_tools.pipeline --only synth-sc prepare-sc
	$(SLEEPEDGE) bench accuracy --cache data/cache/sc --out reports/bench-accuracy

bench-device: setup
	$(MAKE) -C firmware bench-device PYTHON=$(abspath $(PY))

clean:
	$(MAKE) -C firmware clean
	rm -rf build .pytest_cache
