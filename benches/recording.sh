#!/usr/bin/env bash
# Benchmark: recording size against asciinema rec, same output, one run. Installs asciinema.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v asciinema >/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq asciinema >/dev/null
fi
exec cargo bench --bench recording
