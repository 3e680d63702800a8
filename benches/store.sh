#!/usr/bin/env bash
# Benchmark: login and session start with the store on PostgreSQL vs SQLite, in one run.
# PostgreSQL from Debian's package (install.sh --deps-only); root, to run it as `postgres`.
set -euo pipefail
cd "$(dirname "$0")/.."
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ./install.sh --deps-only
exec cargo bench --bench store
