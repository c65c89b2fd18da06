#!/usr/bin/env bash
# The test command: set up (idempotent) and run the whole suite on CPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec python -m pytest "$@"
