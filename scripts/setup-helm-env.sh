#!/usr/bin/env bash
# Create the HELM environment .venv-helm (crfm-helm 0.5.16 on CPU torch 2.13.0, no torchvision).
# HELM pins datasets~=3.1 / spacy~=3.5 / nltk, so it cannot share the training venv (.venv).
#   scripts/setup-helm-env.sh [VENV_DIR]      (default .venv-helm; PYTHON=python3)
# Idempotent: a stamp records the lock it was built from; re-running with the same lock is a no-op.
#
# With envs/helm-constraints.txt (the lock) present, its exact versions are installed with
# --no-deps: no resolver run, no source build. HELM_LOCK=1 (or a missing lock) resolves
# envs/helm-requirements.txt afresh and rewrites the lock from the result (pip freeze).
#
# HELM_BASE_VENV=DIR (the Makefile passes .venv) layers the HELM venv over the training venv: a
# .pth file appends DIR's site-packages *after* .venv-helm's own, so every locked package whose
# version the training venv already has (torch, numpy, transformers, tokenizers, ...) is found
# there instead of being installed a second time, and every other one is installed into
# .venv-helm, where it takes precedence. This halves the set-up time and disk (no second torch) on
# CI's slow disk. The lock is always written from an unlayered environment.
#
# UV=PATH (the Makefile passes its pinned uv) installs the lock with `uv pip install --no-deps
# --compile-bytecode` instead of pip: the same versions, minutes faster. uv does not look through
# .pth files, so with a base venv the lock is first filtered to what the base lacks. The stamp and
# the layering are scripts/layer-venv.sh's, shared with scripts/setup-vllm-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-helm}"
PYTHON="${PYTHON:-python3}"
REQS=envs/helm-requirements.txt
LOCK=envs/helm-constraints.txt
HELM=crfm-helm==0.5.16
STAMP="$VENV/.prefbias-helm-installed"
BASE="${HELM_BASE_VENV:-}"
if [[ "${HELM_LOCK:-0}" == 1 || ! -f envs/helm-constraints.txt ]]; then BASE=""; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
source scripts/layer-venv.sh  # stamp_ok, layer_venv, install_lock

# what the environment was built from: HELM, torch, the layering and the hash of reqs + lock
stamp() { echo "$HELM torch==2.13.0 base=$BASE $(cat "$REQS" "$LOCK" 2>/dev/null | sha256sum | cut -c1-16)"; }
if stamp_ok "$STAMP" "$(stamp)" && [[ "${HELM_LOCK:-0}" != 1 ]]; then
    exit 0
fi
rm -f "$STAMP"

UV="${UV:-}"
if [[ -n "$UV" && "${HELM_LOCK:-0}" != 1 && -f "$LOCK" ]]; then
    test -x "$VENV/bin/python" || "$UV" venv -q --seed --python "$PYTHON" "$VENV"
else
    UV=""
    test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/pip"
layer_venv "$VENV" "$BASE" HELM_BASE_VENV
if [[ -n "$UV" ]]; then
    todo="$VENV/.prefbias-helm-todo.txt"
    # torch (when not layered) from $UV_FIND_LINKS, which the Makefile sets to the CPU wheel's dir
    install_lock "$UV" "$VENV" "$LOCK" "$BASE" "$todo"
    "$VENV/bin/python" -c "import helm.benchmark.run, transformers, torch, prefbias.evaluation" \
        >/dev/null
    stamp >"$STAMP"
    echo "HELM environment ready: $VENV (uv, $(wc -l <"$todo") packages beside $BASE)"
    exit 0
fi
# torch first: the CPU wheel on disk; anything unconstrained would pull a CUDA torch.
"$PIP" install -q torch==2.13.0
if [[ -f "$LOCK" && "${HELM_LOCK:-0}" != 1 ]]; then
    # Every package at its recorded version; crfm-helm is in the lock.
    "$PIP" install -q --no-deps -r "$LOCK"
else
    "$PIP" install -q -r "$REQS"
    # crfm-helm's own metadata asks for zstandard~=0.18 and torchvision: see helm-requirements.txt.
    "$PIP" install -q --no-deps "$HELM"
    {
        echo "# Lock of the HELM environment (.venv-helm, containers/helm.def), written by"
        echo "# HELM_LOCK=1 scripts/setup-helm-env.sh from envs/helm-requirements.txt. Installed with"
        echo "# pip install --no-deps -r (after torch==2.13.0)."
        # the CPU wheel's local version (+cpu) would stop a CUDA image from keeping its own torch
        "$PIP" freeze --exclude-editable | grep -v -i '^prefbias' | sed 's/^torch==\([0-9.]*\)+cpu$/torch==\1/'
    } >"$LOCK.tmp"
    mv "$LOCK.tmp" "$LOCK"
fi
# prefbias itself (for the raw-logit client plugin and the summary code), without touching pins.
"$PIP" install -q --no-deps -e .
"$VENV/bin/python" -c "import helm.benchmark.run, transformers, torch, prefbias.evaluation" \
    >/dev/null
stamp >"$STAMP"
echo "HELM environment ready: $VENV"
