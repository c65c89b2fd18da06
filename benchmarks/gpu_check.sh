#!/usr/bin/env bash
# The checks that need a CUDA GPU, each under its own time limit:
#   1  the CUDA tests (tests/test_cuda.py and the CUDA feature test): GPU against CPU / plain;
#   2  the paper profile's search-step memory on the GPU, ours (benchmarks/search_memory.py):
#      second order at batches 16 and 64, then first order at 64, with PyTorch's allocator
#      capped at 14.5 GiB (about what a 16 GB card such as Colab's T4 leaves to tensors);
#   3  the command line end to end on CUDA: search -> train -> evaluate (smoke profile, bf16);
#   4  the plain (reference) supernet's GPU memory, for comparison;
#   5  the CPU-side test files again with CUDA visible (their `--device auto` paths pick CUDA;
#      needs pytest-xdist).
# Usage: bash benchmarks/gpu_check.sh [LOG_DIR [SECTION ...]]   (default: all sections, in order;
# with every section's limit reached that is 17 minutes, so where a command's time is capped run
# e.g. "1 2" and then "3 4 5").
# Needs the project's environment (requirements.txt) and a CUDA GPU.
set -u
LOG="${1:-runs/gpu-check}"
shift || true
SECTIONS="${*:-1 2 3 4 5}"
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$SECONDS
section() { echo; echo "=== [$((SECONDS - T0)) s] $*"; }
want() { [[ " $SECTIONS " == *" $1 "* ]]; }

section "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

if want 1; then
  section "1. CUDA tests"
  timeout 200 python -m pytest -q -p no:cacheprovider -o addopts="" -rfEs \
    tests/test_cuda.py "tests/test_features.py::test_cuda_matches_librosa" 2>&1 | tee "$LOG/pytest_cuda.log"
fi
if want 2; then
  section "2. search memory on the GPU, ours (paper profile)"
  timeout 330 python benchmarks/search_memory.py --profiles paper --batches 16 64 --device cuda \
    --nets ours --limit-gib 70 --max-step-s 600 --cap-gib 14.5 2>&1 | tee "$LOG/search_memory_cuda.log"
  timeout 90 python benchmarks/search_memory.py --child --profile paper --kind ours --batch 64 \
    --order first --device cuda --cap-gib 14.5 2>&1 | tee -a "$LOG/search_memory_cuda.log"
fi
if want 3; then
  section "3. command line on CUDA: search -> train -> evaluate (smoke, generated corpus, bf16)"
  W="$(mktemp -d)"
  timeout 120 bash -c "
    set -e
    python -m emodarts_core search --corpus generated --data-root $W/data --profile smoke --device cuda --out $W/s
    python -m emodarts_core train --corpus generated --data-root $W/data --profile smoke --device cuda --genotype $W/s --out $W/t
    python -m emodarts_core evaluate --run $W/t --corpus generated --data-root $W/data --device cuda
    python -c \"import json; print(json.load(open('$W/s/environment.json'))['device_name'])\"
  " 2>&1 | tee "$LOG/cli_cuda.log"
fi
if want 4; then
  section "4. the plain supernet's memory on the GPU, for comparison"
  timeout 150 python benchmarks/search_memory.py --profiles paper --batches 16 64 --device cuda \
    --nets plain --limit-gib 70 --max-step-s 600 2>&1 | tee -a "$LOG/search_memory_cuda.log"
fi
if want 5; then
  section "5. CPU-side tests with CUDA visible"
  timeout 120 python -m pytest -q -p no:cacheprovider -o addopts="" -n 8 \
    tests/test_cli.py tests/test_search.py tests/test_train.py tests/test_resume.py \
    tests/test_memory.py tests/test_supernet.py tests/test_network.py 2>&1 | tail -n 30 \
    | tee "$LOG/pytest_rest.log"
fi
section "done"
