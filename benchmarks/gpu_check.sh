#!/usr/bin/env bash
# The GPU check, one script, under 5 minutes on one GPU (run from anywhere):
#   1. installs, from benchmarks/.wheels/ (made by benchmarks/gpu_wheels.sh where there is
#      network; carry that git-ignored folder with the working tree), every wheel whose
#      module does not import yet: gymnasium, pytest, and for the JAX side evosax, gymnax,
#      flax and the modules they import; --no-index, nothing is downloaded;
#   2. runs the CUDA tests (pytest -m cuda) and the device-resident generation tests;
#   3. runs benchmarks/gpu.py on the GPU at the populations that fit (1k, 10k, 100k, 1M),
#      with the CartPole solve runs and, where jax, evosax and gymnax import, the JAX
#      side-by-side (benchmarks/gpu_jax.py) at the same populations.
# Figures go to $OUT (or benchmarks/) as gpu_check.json and gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=benchmarks/.wheels
SITE="$PWD/benchmarks/.site"  # wheels go here (pip --target): no root, no PEP 668 refusal
RESULTS=${OUT:-benchmarks}
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_check.log"
mkdir -p "$SITE"
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
: > "$LOG"
say() { echo "$@" | tee -a "$LOG"; }
say "== gpu_check $(date -u +%FT%TZ) on $(hostname)"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" 2>&1 | tee -a "$LOG"

unpack() {  # unpack SPEC: without pip, a wheel is a zip file to extract into $SITE
  local name=${1%%==*} version=
  [[ $1 == *==* ]] && version=${1#*==}
  name=$(echo "$name" | tr 'A-Z-' 'a-z_')
  local wheel
  wheel=$(ls "$WHEELS"/*.whl | while read -r w; do
    base=$(basename "$w" | tr 'A-Z' 'a-z')
    [[ $base == "$name-${version:-}"* ]] && echo "$w"; done | sort | tail -1)
  [ -n "$wheel" ] && "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$wheel" "$SITE"
}
have() {  # have MODULE: installed (found, not imported: gymnax imports seaborn, which gpu_jax.py stubs)
  "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" >/dev/null 2>&1
}
need() {  # need MODULE WHEEL_SPEC: install the wheel from $WHEELS if MODULE is not installed
  local module=$1 spec=$2
  if ! have "$module"; then
    if [ -d "$WHEELS" ]; then
      { "$PY" -m pip install -q --no-index --no-deps --find-links "$WHEELS" --target "$SITE" "$spec" >>"$LOG" 2>&1 \
        || unpack "$spec"; } && have "$module" \
        && say "installed $spec" || say "could not install $spec from $WHEELS"
    else
      say "missing $module and no $WHEELS (run benchmarks/gpu_wheels.sh with network, carry the folder)"
    fi
  fi
}
for pair in farama_notifications:farama-notifications cloudpickle:cloudpickle typing_extensions:typing-extensions \
            gymnasium:gymnasium==1.4.0 safetensors:safetensors \
            iniconfig:iniconfig pluggy:pluggy packaging:packaging pytest:pytest; do
  need "${pair%%:*}" "${pair#*:}"
done
if "$PY" -c "import jax" >/dev/null 2>&1; then
  FLAX=$("$PY" -c "import jax; v = tuple(int(x) for x in jax.__version__.split('.')[:3]); print('0.12.12' if v >= (0, 11, 1) else '0.12.8')")
  for pair in six:six msgpack:msgpack mdurl:mdurl markdown_it:markdown-it-py pygments:pygments rich:rich yaml:pyyaml \
              treescope:treescope dotmap:dotmap flax:flax==$FLAX evosax:evosax==0.3.2 gymnax:gymnax==1.0.1; do
    need "${pair%%:*}" "${pair#*:}"
  done
  JAX=--jax
else
  say "jax does not import: the JAX side-by-side is skipped"
  JAX=
fi

say "== CUDA tests"
timeout 100 "$PY" -m pytest -q -p no:cacheprovider tests/test_torch_problem.py tests/test_torch_envs.py 2>&1 | tail -15 | tee -a "$LOG"

say "== benchmarks/gpu.py"
timeout 200 "$PY" benchmarks/gpu.py --device cuda --populations 1000,10000,100000,1000000 --repeats 2 \
  --solve-seeds 0,1,2 $JAX --jax-timeout 80 --json "$RESULTS/gpu_check.json" 2>&1 | tee -a "$LOG"
say "== done $(date -u +%FT%TZ)"
