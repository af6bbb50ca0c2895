#!/usr/bin/env bash
# Create the HELM environment .venv-helm (crfm-helm 0.5.16 on CPU torch 2.13.0, no torchvision).
# HELM pins datasets~=3.1 / spacy~=3.5 / nltk, so it cannot share the training venv (.venv).
# Idempotent: a stamp file records the lock it was built from; re-running is a no-op.
#   scripts/setup-helm-env.sh [VENV_DIR]      (default .venv-helm; PYTHON=python3)
# With envs/helm-constraints.txt present the exact recorded versions are installed;
# HELM_LOCK=1 rewrites that lock from the fresh environment (pip freeze).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-helm}"
PYTHON="${PYTHON:-python3}"
LOCK=envs/helm-constraints.txt
STAMP="$VENV/.prefbias-helm-installed"
export PIP_DISABLE_PIP_VERSION_CHECK=1

lockhash() { if [[ -f "$LOCK" ]]; then sha256sum "$LOCK" | cut -c1-16; fi; }
want="crfm-helm==0.5.16 torch==2.13.0 $(lockhash)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip"
# torch first: the CPU wheel; unconstrained, crfm-helm (via torchvision) pulls a new CUDA torch.
"$PIP" install -q torch==2.13.0
tmpc="$(mktemp)"
trap 'rm -f "$tmpc"' EXIT
if [[ -f "$LOCK" && "${HELM_LOCK:-0}" != 1 ]]; then
    # The lock lists everything except prefbias itself; torchvision is not in it (removed below).
    cp "$LOCK" "$tmpc"
else
    echo "torch==2.13.0" >"$tmpc"
fi
"$PIP" install -q -c "$tmpc" crfm-helm==0.5.16
# The PyPI torchvision wheel is a CUDA build and breaks `import transformers` next to CPU torch;
# HELM's text path does not need it.
"$PIP" uninstall -q -y torchvision || true
# prefbias itself (for the raw-logit client plugin), without touching HELM's pins.
"$PIP" install -q --no-deps -e .
if [[ ! -f "$LOCK" || "${HELM_LOCK:-0}" == 1 ]]; then
    "$PIP" freeze --exclude-editable | grep -v -i '^prefbias' | grep -v '^torchvision==' >"$LOCK"
    want="crfm-helm==0.5.16 torch==2.13.0 $(lockhash)"
fi
"$VENV/bin/python" -c "import helm.benchmark.run, transformers, torch, prefbias.evaluation" \
    >/dev/null
echo "$want" >"$STAMP"
echo "HELM environment ready: $VENV"
