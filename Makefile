# Lakehouse Expert Patterns — every target a learner or CI needs.
#   make run    set up (first time) and run all ten patterns in order, locally
#   make test   set up (first time), lint, and run the test suite (CI runs exactly this)
#   make test-lanes  the scale-out lanes: every Spark pattern on a local standalone cluster and
#               over a local Spark Connect server, and databricks/01 on s3:// object storage
#               (CI runs this after make test)
# Prerequisites: Python >= 3.11 and Java 17 or 21. Nothing else.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help run test test-lanes setup lint format doctor tools clean

help:
	@echo "make run     set up and run every pattern, in order, locally"
	@echo "make test    set up, lint and run the test suite (what CI runs)"
	@echo "make test-lanes  every Spark pattern on a local cluster and over Spark Connect, databricks/01 on s3a (~17 min)"
	@echo "make doctor  check Python, Java, Spark + Delta, the local engines and your .env"
	@echo "make tools   install the optional tools some tests use (chromium, promtool, actionlint, datacontract-cli)"
	@echo "make clean   remove the virtualenv and every run's state"

run: setup
	$(BIN)/expert run all

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/deptry .
	$(BIN)/pytest -n 2 --dist loadgroup

test-lanes: setup
	$(BIN)/pytest -m "cluster or connect or s3a" tests/test_scale_out.py

setup: $(STAMP)
	@PYTHON=$(PYTHON) bash scripts/install-dbt.sh
	@$(BIN)/python -m expert.runtime.class_archive

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is required, found " + sys.version.split()[0] + " (choose another with: make PYTHON=python3.12 ...)")'
	@if [ -n "$$JAVA_HOME" ] && [ -x "$$JAVA_HOME/bin/java" ]; then :; \
	 elif command -v java >/dev/null 2>&1; then :; \
	 else echo "error: Java 17 or 21 is required and was not found (Debian/Ubuntu: sudo apt-get install openjdk-17-jdk-headless; or set JAVA_HOME)"; exit 1; fi
	@echo "Creating $(VENV) and installing the pinned stack (first time only, ~1-2 min)…"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/deptry .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

doctor: setup
	$(BIN)/expert doctor

# Optional tools a few tests use; those tests skip without them (CI sets EXPERT_REQUIRE_TOOLS=1).
tools:
	bash scripts/install-tools.sh
	bash scripts/install-datacontract.sh

clean:
	rm -rf $(VENV) .work .cache .pytest_cache .ruff_cache
