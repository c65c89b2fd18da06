#!/usr/bin/env bash
# The main job: set up (idempotent), execute every notebook on the embedded default data with the
# `book` parameter set, build the book into _build/html and check it in a headless browser.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
python scripts/build_book.py --params book "$@"
python scripts/check_book.py _build/html
