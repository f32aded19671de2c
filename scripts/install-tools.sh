#!/usr/bin/env bash
# Install the optional external tools some tests use. Idempotent: skips what is already there.
#   chromium   headless rendering check of the BI dashboard (integration/01)      Debian package
#   promtool   Prometheus rule and exposition checks (databricks/02)              Debian package "prometheus"
#   prometheus the real Prometheus server databricks/02 evaluates its rules with  Debian package "prometheus"
#   prometheus-alertmanager  Alertmanager, routing databricks/02's alerts         Debian package "prometheus-alertmanager"
#   actionlint GitHub Actions workflow lint (databricks/03)                       go install
set -euo pipefail
cd "$(dirname "$0")/.."
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
mkdir -p .cache/bin

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

missing_debs=()
command -v chromium >/dev/null 2>&1 || missing_debs+=(chromium)
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing_debs+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || missing_debs+=(prometheus-alertmanager)
if [ ${#missing_debs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian packages: ${missing_debs[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
  else
    echo "warning: apt-get not found; install ${missing_debs[*]} with your package manager" >&2
  fi
fi

if ! command -v actionlint >/dev/null 2>&1 && [ ! -x .cache/bin/actionlint ]; then
  if command -v go >/dev/null 2>&1; then
    echo "Building actionlint ${ACTIONLINT_VERSION} with go install"
    GOBIN="$PWD/.cache/bin" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}"
  else
    echo "warning: Go not found; actionlint not installed (its test will skip)" >&2
  fi
fi

for tool in chromium promtool prometheus prometheus-alertmanager; do command -v "$tool" >/dev/null && echo "ok: $tool ($(command -v "$tool"))"; done
for tool in actionlint; do
  if command -v "$tool" >/dev/null; then echo "ok: $tool ($(command -v "$tool"))"; elif [ -x ".cache/bin/$tool" ]; then echo "ok: $tool (.cache/bin/$tool)"; fi
done
