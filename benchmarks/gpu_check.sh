#!/usr/bin/env bash
# The GPU checks of issue 35 in one run (about 12 minutes on one H100-class GPU): the GPU tests,
# then the step profile and eager-vs-compiled throughput with --device cuda (Swimmer, K=10), then
# Ours' groups alone and four at once on the GPU (Swimmer and Ant, K=10 and 50: the rates
# `asymbench estimate --gpu-slots 4` uses), each writing JSON under benchmarks/results/ with the
# GPU's name (the JSON's machine.gpu).
#     bash benchmarks/gpu_check.sh            (from the repository root, .venv installed)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export MUJOCO_GL=egl
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: no CUDA device is visible to PyTorch')" || exit 1
status=0
timeout 150 $PY -m pytest -x -q -n 0 tests/test_engine.py -k "gpu" || status=1
cd benchmarks
timeout 120 $PY step_profile.py --device cuda --cases swimmer_l_only swimmer_ours --members 10 \
    --steps 200 || status=1
timeout 200 $PY compile_speedup.py --device cuda --cases swimmer_l_only --members 10 --steps 100 \
    --chunks 2 || status=1
# written after each task: a timeout keeps Swimmer's rows
timeout 300 $PY engine_throughput.py --device cuda --tasks Swimmer Ant --trainers asym \
    --members 10 50 --concurrent 1 4 --steps 100 --repeats 1 \
    --out results/engine_throughput_cuda_concurrent.json || status=1
exit $status
