#!/usr/bin/env bash
# Install datacontract-cli (the ODCS lint / breaking / test tool) in its own virtualenv under
# .cache/tools/datacontract/, pinned with scripts/datacontract-constraints.txt. Idempotent: does
# nothing when the pinned version is already there. `make tools` runs it; the contract tests and
# integration/04 find it there (expert/runtime/datacontract_cli.py).
#
# Why its own environment: it is a command-line tool with its own dependency set, not a library the
# patterns import; keeping it out of the pinned runtime stack (constraints.txt) lets either move
# without breaking the other.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="1.2.8"
PYTHON="${PYTHON:-python3}"
TOOLS="${EXPERT_CACHE_DIR:-$PWD/.cache}/tools"
VENV="$TOOLS/datacontract"
CLI="$VENV/bin/datacontract"

if [ -x "$CLI" ] && [ "$("$CLI" --version 2>/dev/null)" = "$VERSION" ]; then
  echo "ok: datacontract-cli $VERSION ($CLI)"
  exit 0
fi
echo "Installing datacontract-cli $VERSION into $VENV"
rm -rf "$VENV"
mkdir -p "$TOOLS"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c scripts/datacontract-constraints.txt "datacontract-cli==$VERSION"
test "$("$CLI" --version)" = "$VERSION"
echo "ok: datacontract-cli $VERSION ($CLI)"
