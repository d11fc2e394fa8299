#!/usr/bin/env bash
# The tiny SFT -> GRPO chain of the quick start in bf16 on a CUDA GPU (what tests/test_sft.py's gpu test runs), with
# its held-out table.
# Usage: scripts/gpu_sft_grpo_chain.sh [OUT_DIR]     (needs torch with CUDA; about a minute on one GPU)
set -euo pipefail
out="${1:-runs/gpu-chain}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script needs a GPU')"
proguard quickstart --out "$out" \
  --sft-recipe recipes/tiny/sft_cpu.yaml --grpo-recipe recipes/tiny/grpo_from_sft_cpu.yaml \
  --sft sft.bf16=true --sft model.dtype=bfloat16 --grpo grpo.bf16=true --grpo model.dtype=bfloat16
python -m pytest -q tests/test_sft.py -m gpu
