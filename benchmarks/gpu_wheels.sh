#!/usr/bin/env bash
# Download, here (with network), the wheels that benchmarks/gpu_check.sh installs on a GPU
# machine without network (Python 3.12, torch with CUDA, JAX and optax already there):
# Gymnasium for pytorch-es itself, evosax 0.3 + gymnax 1.0 (+ flax and the few modules
# they import) for the JAX side-by-side, pytest for the CUDA tests. Into
# benchmarks/.wheels/ (git-ignored), about 10 MB; carry that folder with the working tree.
# gpu_check.sh installs a wheel only where its module does not import already.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
DEST=.wheels
mkdir -p "$DEST"
get() { "$PY" -m pip download -q --python-version 3.12 --only-binary=:all: --no-deps -d "$DEST" "$@"; }
# pytorch-es on the GPU machine
get "gymnasium==1.4.0" farama-notifications cloudpickle typing-extensions safetensors
# the JAX side-by-side: evosax and gymnax, and what importing them needs beyond jax and optax
# (matplotlib and seaborn, for rendering only, are stubbed by gpu_jax.py when missing)
get "evosax==0.3.2" "gymnax==1.0.1" six msgpack rich markdown-it-py mdurl pygments pyyaml treescope dotmap
# flax: one release for jax >= 0.11.1, one for older jax (gpu_check.sh picks)
get "flax==0.12.12"
get "flax==0.12.8"
# the CUDA tests
get pytest pluggy iniconfig packaging
ls -1 "$DEST"
du -sh "$DEST"
