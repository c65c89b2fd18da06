#!/usr/bin/env bash
# Set up everything the project needs on a fresh Linux machine, idempotently, and print nothing
# but progress. Source it (". scripts/setup_env.sh") to get the environment activated.
#
# - Debian packages: graphviz (the `dot` binary for genotype graphs) and chromium (the book check).
# - A virtual environment with the exact tested set (requirements.txt), kept in a cache OUTSIDE the
#   clone and keyed by the hash of requirements.txt + pyproject.toml: an unchanged set is reused,
#   a changed one is built from scratch. Override the location with EMODARTS_VENV.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need_apt=()
command -v dot >/dev/null 2>&1 || need_apt+=(graphviz)
if [ "${EMODARTS_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "[setup] please install: ${need_apt[*]} (e.g. sudo apt-get install ${need_apt[*]})" >&2
  fi
fi

hash=$(cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)
VENV="${EMODARTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/emodarts/venv-$hash}"
mkdir -p "$(dirname "$VENV")"
# One builder at a time: a second setup on the same machine (two clones, parallel jobs) waits
# for the first instead of deleting the environment it is building.
exec 9>"$VENV.lock"
flock 9
if [ ! -f "$VENV/.complete" ]; then
  echo "[setup] building the virtual environment $VENV (a few minutes: torch is large)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  log="$(mktemp)"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip && \
         "$VENV/bin/python" -m pip install -r "$ROOT/requirements.txt"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "[setup] pip failed; full log: $log" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$VENV/.complete"
fi
flock -u 9
exec 9>&-
# The library is used from this checkout (no install into the shared cached venv, which several
# clones may share): PYTHONPATH reaches the kernels papermill starts too.
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
echo "[setup] python: $(command -v python) (torch $(python -c 'import torch; print(torch.__version__)'))"
