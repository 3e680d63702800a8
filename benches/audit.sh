#!/usr/bin/env bash
# Benchmark: the Audit view's refresh on a 1 GiB audit log (SIZE_MIB to change), against
# reading the whole log, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench audit
