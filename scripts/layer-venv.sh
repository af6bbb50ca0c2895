# shellcheck shell=bash
# Shared by scripts/setup-helm-env.sh and scripts/setup-vllm-env.sh, which source it (under their
# `set -euo pipefail`): the stamp that makes a set-up a no-op when nothing it was built from
# changed, and the layering of a tool's venv over a base venv (the training venv, .venv).
#
# Layering: a .pth file in VENV appends BASE's site-packages *after* VENV's own, so every locked
# package BASE already has at the locked version (torch above all) is found there instead of being
# installed a second time, and every other one is installed into VENV, where it takes precedence.
# uv does not look through .pth files, so the lock is first filtered to what BASE lacks.

# stamp_ok STAMP TEXT: the venv's stamp file says it was built from TEXT
stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

purelib() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

# layer_venv VENV BASE VAR: VENV sees BASE's packages after its own; no BASE, no layer (VAR: the
# setting BASE came from, for the error message)
layer_venv() {
    local venv="$1" base="$2" var="$3" layer
    layer="$(purelib "$venv")/zz-prefbias-base-venv.pth"
    if [[ -n "$base" ]]; then
        test -x "$base/bin/python" || { echo "$var=$base has no bin/python" >&2; exit 1; }
        purelib "$base" >"$layer"
    else
        rm -f "$layer"
    fi
}

# install_lock UV VENV LOCK BASE TODO: LOCK's pins into VENV with `uv pip install --no-deps`, less
# every one BASE already has at that version (TODO: the list installed), then prefbias itself
# (editable, without touching pins)
install_lock() {
    local uv="$1" venv="$2" lock="$3" base="$4" todo="$5"
    "${base:-$venv}/bin/python" - "$lock" ${base:+--skip-installed} >"$todo" <<'PY'
import importlib.metadata as md
import re
import sys

norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
have = {}
if "--skip-installed" in sys.argv:
    have = {norm(d.metadata["Name"]): d.version.split("+")[0] for d in md.distributions()}
for line in open(sys.argv[1], encoding="utf-8"):
    req = line.split("#")[0].strip()
    if req and have.get(norm(req.partition("==")[0])) != req.partition("==")[2]:
        print(req)
PY
    "$uv" pip install -q --python "$venv/bin/python" --no-deps --compile-bytecode -r "$todo"
    "$uv" pip install -q --python "$venv/bin/python" --no-deps -e .
}
