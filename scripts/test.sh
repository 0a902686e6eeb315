#!/usr/bin/env bash
# Installs what the test suite needs (Debian's Chromium and Fashion-MNIST, the Python package with its
# test extras), then runs every check CI runs: ruff and the whole pytest suite, browser tests included.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k kl -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -m pip install -q -e ".[test]"
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m pytest "$@"
