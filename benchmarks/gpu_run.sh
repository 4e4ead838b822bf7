#!/bin/bash
# One device call: CUDA tests of the backends, then the GPU benchmark (benchmarks/gpu.py).
export PYTHONPATH=src:. PYTHONUNBUFFERED=1
OUT=${OUT:-.}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_backends.py -k "cuda or torch_float64 or float32" 2>&1 | tail -3
set -o pipefail
python3 -m benchmarks.gpu --device cuda --budget-s "${BUDGET_S:-210}" --out "$OUT" 2>&1 | tee "$OUT/gpu_log.txt"
