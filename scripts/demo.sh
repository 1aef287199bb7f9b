#!/usr/bin/env bash
# Set up, then run the demo: train a ViT on MNIST-5k, compile it, run it on QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tvm-mcuformer demo --out "${1:-out/demo}"
