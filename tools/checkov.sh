#!/usr/bin/env bash
# Runs checkov from its own virtualenv (.venv-checkov): checkov pins an older pycep-parser and many
# libraries that must not leak into the project's venv. Creates the venv on first use.
#   tools/checkov.sh --install-only     create/refresh the venv and exit
#   tools/checkov.sh [checkov args...]  default: scan infra/ with the Bicep framework and the repo config
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOV_VERSION=3.3.30
VENV=.venv-checkov
STAMP="$VENV/.installed-$CHECKOV_VERSION"
PYTHON=${PYTHON:-python3}

if [ ! -f "$STAMP" ]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  touch "$STAMP"
fi

if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi
if [ $# -eq 0 ]; then
  set -- -d infra --framework bicep --skip-download --config-file infra/.checkov.yaml --compact --quiet
fi
exec "$VENV/bin/checkov" "$@"
