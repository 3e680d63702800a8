#!/usr/bin/env bash
# Benchmark: cordon's sandbox start-up against plain exec and bubblewrap, in one run.
# Installs Debian's bubblewrap if it is missing (needs root or sudo), then runs the bench.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bwrap >/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -qq bubblewrap >/dev/null
fi
exec cargo bench --bench sandbox_start
