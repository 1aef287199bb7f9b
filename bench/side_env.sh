#!/usr/bin/env bash
# The converter + TFLite Micro environment for bench/make_tflite.py and bench/tflite_vs_tflm.py
# (litert-torch, ai-edge-quantizer, tflite-micro: ~2 GB with jax), kept out of the core install.
# It reuses the project's .venv for torch and the package (a .pth line), so torch is not
# installed twice. Usage: bash bench/side_env.sh [DIR]   (default /work/side/tflite-env)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ENV="${1:-${TFLITE_SIDE_ENV:-/work/side/tflite-env}}"
PY="$(readlink -f "$ROOT/.venv/bin/python")"
if [ ! -x "$ENV/bin/python" ]; then
  "$PY" -m venv "$ENV"
  SITE="$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  ENV_SITE="$("$ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$SITE" > "$ENV_SITE/zz_project_venv.pth"
fi
"$ENV/bin/pip" install -q litert-torch ai-edge-quantizer tflite-micro
# tvm (imported through the project package) needs a newer typing_extensions than jax's xdsl pins.
"$ENV/bin/pip" install -q "typing_extensions>=4.15"
echo "$ENV"
