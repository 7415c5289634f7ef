#!/usr/bin/env bash
# Create the peer libraries' virtual environments under .peers/ (git-ignored):
#   .peers/original : the 2018 library, pytorch-es==0.1.1 (imports as pytorch_es, like ours)
#   .peers/evotorch : EvoTorch 0.6.1
#   .peers/crfmnes  : the authors' CR-FM-NES, crfmnes 1.0.0 (numpy only)
# Benchmarks run the peers in these venvs as subprocesses; the library never imports them.
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
make_venv .peers/original numpy "gymnasium[box2d]"
.peers/original/bin/python -m pip install -q --no-deps pytorch-es==0.1.1
make_venv .peers/evotorch numpy "gymnasium[box2d]" "ray" cma pandas matplotlib
.peers/evotorch/bin/python -m pip install -q --no-deps evotorch==0.6.1
if [ ! -x .peers/crfmnes/bin/python ]; then
  python3 -m venv .peers/crfmnes
  .peers/crfmnes/bin/python -m pip install -q numpy crfmnes==1.0.0
fi
echo "peers ready in .peers/"
