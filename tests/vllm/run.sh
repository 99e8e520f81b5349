#!/usr/bin/env bash
# Tests against the real vLLM, in a virtual environment of their own.
#
#   bash tests/vllm/run.sh            (from anywhere; CPU only, no GPU needed)
#
# Installs the pinned vLLM from PyPI with what it requires (a CUDA build of torch 2.14.0: about
# 9 GB in the venv, 3.5 minutes on 2 cores with a fast link, measured 2026-11-23), this package
# (pure Python: W4A16_RDNA3_BUILD=0), then runs tests/vllm and the plugin/kernel/checkpoint tests
# with vLLM present, where the kernel classes subclass vLLM's own MPLinearKernel.
#
# Environment: VLLM_VERSION (default 0.34.0, the newest on PyPI on 2026-12-04; 0.33.0, 0.20.0 and
# 0.11.0, the older layout, passed too); W4A16_VLLM_VENV (default
# ${TMPDIR:-/tmp}/w4a16-rdna3-vllm-$VLLM_VERSION, reused when it already holds that vLLM).
set -euo pipefail
cd "$(dirname "$0")/../.."

VLLM_VERSION="${VLLM_VERSION:-0.34.0}"
VENV="${W4A16_VLLM_VENV:-${TMPDIR:-/tmp}/w4a16-rdna3-vllm-$VLLM_VERSION}"
PY="$VENV/bin/python"

installed_vllm() {
    [ -x "$PY" ] && "$PY" -c 'import importlib.metadata as m; print(m.version("vllm"))' 2>/dev/null
}

if [ "$(installed_vllm)" != "$VLLM_VERSION" ]; then
    echo "run.sh: creating $VENV with vLLM $VLLM_VERSION"
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
    if ! "$PY" -m pip install -q "vllm==$VLLM_VERSION"; then
        # Releases vLLM pins that the package index did not have: certifi>=2026.10.19 (vLLM 0.33.0;
        # newest 2026.10.18 on 2026-11-23) and flashinfer-python==0.7.3 (vLLM 0.34.0; 0.7.2 and
        # 0.7.4 there on 2026-12-04; no test here runs flashinfer's CUDA kernels). Install vLLM
        # itself without dependencies, then exactly what it requires, with only those two unpinned.
        echo "run.sh: plain install failed; installing vLLM's requirements with certifi and flashinfer-python unpinned"
        "$PY" -m pip install -q --no-deps "vllm==$VLLM_VERSION"
        "$PY" - > "$VENV/vllm-requirements.txt" <<'EOF'
import importlib.metadata
import re

for requirement in importlib.metadata.requires("vllm") or []:
    if "extra ==" in requirement:
        continue
    print(re.sub(r"^(certifi|flashinfer-python)\b[^;]*", r"\1", requirement))
EOF
        "$PY" -m pip install -q -r "$VENV/vllm-requirements.txt"
    fi
fi

# Without build isolation our build runs on the venv's own setuptools and wheel (pyproject's
# build requirements), which a venv of a vLLM that does not require them lacks (0.11.0).
"$PY" -m pip install -q "setuptools>=64" wheel pytest
W4A16_RDNA3_BUILD=0 "$PY" -m pip install -q --no-deps --no-build-isolation -e .

set +e
"$PY" -m pytest -q -rs tests/vllm tests/test_vllm_plugin.py tests/test_kernels.py tests/test_checkpoint.py
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "run.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
