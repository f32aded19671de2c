#!/usr/bin/env bash
# Install dbt (dbt-core + dbt-snowflake) in its own virtualenv, .cache/tools/dbt/, from the pinned
# set in dbt/requirements.txt + dbt/constraints.txt. Idempotent: when the venv already holds exactly
# that set (a stamp named after their checksum), it says so and exits in well under a second.
# Why not the project's .venv: dbt-core 1.11 requires protobuf < 7, the project pins protobuf 7.
#   PYTHON=python3.12 bash scripts/install-dbt.sh    choose the interpreter (Python >= 3.11)
#   DBT_VENV=/some/dir bash scripts/install-dbt.sh   install elsewhere (expert/runtime/dbt.py reads the same
#                                                    variable, and EXPERT_CACHE_DIR as the project's caches do)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${DBT_VENV:-${EXPERT_CACHE_DIR:-.cache}/tools/dbt}"
REQUIREMENTS=dbt/requirements.txt
CONSTRAINTS=dbt/constraints.txt
PIP_VERSION=26.3
STAMP="$VENV/.installed-$(cat "$REQUIREMENTS" "$CONSTRAINTS" | cksum | cut -d' ' -f1)"
# Versions from the installed metadata (`dbt --version` would ask the package index for the latest).
versions() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print("dbt-core", m.version("dbt-core"), "+ dbt-snowflake", m.version("dbt-snowflake"))'
}

if [ -f "$STAMP" ] && [ -x "$VENV/bin/dbt" ]; then
  echo "ok: dbt already installed in $VENV ($(versions))"
  exit 0
fi

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is required for dbt, found " + sys.version.split()[0])'
started=$(date +%s)
if [ -d "$VENV" ]; then
  echo "Updating dbt's virtualenv $VENV to the pinned set in $CONSTRAINTS"
else
  echo "Creating dbt's virtualenv $VENV and installing the pinned set in $CONSTRAINTS (first time only, ~1 min)"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade "pip==$PIP_VERSION"
PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install --quiet -c "$CONSTRAINTS" -r "$REQUIREMENTS"
"$VENV/bin/python" -c 'import dbt.cli.main, dbt.adapters.snowflake'  # the CLI and the adapter import
rm -f "$VENV"/.installed-*
touch "$STAMP"
echo "ok: $(versions) installed in $VENV in $(( $(date +%s) - started )) s"
