#!/usr/bin/env bash
# Create the peer libraries' virtual environments under .peers/ (git-ignored):
#   .peers/original : the 2018 library, pytorch-es==0.1.1 (imports as pytorch_es, like ours)
#   .peers/evotorch : EvoTorch 0.6.1
#   .peers/crfmnes  : the authors' CR-FM-NES, crfmnes 1.0.0 (numpy only)
#   .peers/evosax   : evosax 0.3.2 on CPU JAX 0.10.2 (no torch)
#   .peers/evox     : EvoX 1.4.0 on torch 2.13.0 (CPU)
# Benchmarks run the peers in these venvs as subprocesses; the library never imports them.
#   bash benchmarks/peers/setup.sh                 # all of them
#   bash benchmarks/peers/setup.sh evosax evotorch # only these
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .peers
make_venv() {
  local dir=$1; shift
  if [ ! -x "$dir/bin/python" ]; then
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip
    "$dir/bin/python" -m pip install -q torch==2.13.0
    "$dir/bin/python" -m pip install -q "$@"
  fi
}
peers=("$@")
want() { [ ${#peers[@]} -eq 0 ] || [[ " ${peers[*]} " == *" $1 "* ]]; }
if want original; then
  make_venv .peers/original numpy "gymnasium[box2d]"
  .peers/original/bin/python -m pip install -q --no-deps pytorch-es==0.1.1
fi
if want evotorch; then
  make_venv .peers/evotorch numpy "gymnasium[box2d]" "ray" cma pandas matplotlib
  .peers/evotorch/bin/python -m pip install -q --no-deps evotorch==0.6.1
fi
if want crfmnes && [ ! -x .peers/crfmnes/bin/python ]; then
  python3 -m venv .peers/crfmnes
  .peers/crfmnes/bin/python -m pip install -q numpy crfmnes==1.0.0
fi
if want evosax && [ ! -x .peers/evosax/bin/python ]; then
  python3 -m venv .peers/evosax
  .peers/evosax/bin/python -m pip install -q --upgrade pip
  .peers/evosax/bin/python -m pip install -q numpy "jax[cpu]==0.10.2" evosax==0.3.2  # the versions measured
fi
if want evox; then
  make_venv .peers/evox numpy
  .peers/evox/bin/python -m pip install -q evox==1.4.0  # the version measured; torch is already there
fi
echo "peers ready in .peers/"
