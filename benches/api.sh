#!/usr/bin/env bash
# Benchmark: the HTTP API's request rate and WebSocket attach throughput against SSH's, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench api
