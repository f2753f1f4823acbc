#!/usr/bin/env bash
# Downloads the pinned runtime dependencies (requirements.txt) as wheels into .state/wheelhouse, once per
# version of requirements.txt, so tests/packaging can install the built wheel into a fresh virtualenv
# with `pip install --no-index --find-links .state/wheelhouse`: offline, and only what the pins allow.
#   tools/wheelhouse.sh          refresh if requirements.txt changed, print the directory
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.state/wheelhouse
PYTHON=${PYTHON:-python3}
digest=$(sha256sum requirements.txt | cut -c1-16)
STAMP="$DIR/.requirements-$digest"

mkdir -p .state
# Parallel test workers may call this at once: one downloads, the others wait for it.
exec 9>.state/wheelhouse.lock
flock 9
if [ ! -f "$STAMP" ]; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  "$PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: -r requirements.txt -d "$DIR"
  touch "$STAMP"
fi
echo "$PWD/$DIR"
