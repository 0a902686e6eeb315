#!/usr/bin/env bash
# Installs what the test suite needs (Debian's Chromium, nginx and Fashion-MNIST, the Python package with its
# test and ray extras), then runs every check CI runs: ruff and the whole pytest suite, browser tests included.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k kl -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  # Debian starts a service it installs (nginx on port 80); the tests run their own nginx, as this user on
  # a free port. A policy-rc.d that answers 101 ("not allowed") keeps the system one from starting.
  no_start=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    no_start=1
  fi
  status=0
  $sudo apt-get update -qq || status=$?
  [ $status -ne 0 ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null || status=$?
  [ -z "$no_start" ] || $sudo rm -f /usr/sbin/policy-rc.d
  [ $status -eq 0 ] || exit $status
fi

python3 -m pip install -q -e ".[test,ray]"
python3 -m ruff check .
python3 -m ruff format --check .
# The suite runs on every core (at most 4: each worker holds its own torch and Streamlit), a whole test
# module per worker so that its server and trained models are made once; tests/conftest.py starts the long
# modules first. Arguments after these override them, e.g. `-n 0` runs in one process.
status=0
python3 -m pytest -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder "$@" || status=$?
if [ $status -eq 5 ]; then
  # pytest's "no tests collected": the whole suite (CI) must have tests; a selection that matches none is
  # said so and is not an error.
  if [ $# -eq 0 ]; then
    echo "pytest collected no tests" >&2
  else
    echo "no test matches the selection: $*" >&2
    status=0
  fi
fi
exit $status
