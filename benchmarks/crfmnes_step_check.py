"""Step-for-step check of our CR-FM-NES against the authors' ``crfmnes`` 1.0.0.

Both start from the same center, sigma and ``v_0``; each generation the reference is fed
our population's noise (its mirrored ``z``: our members ``2k``, ``2k+1`` are its columns
``k``, ``k + N/2``) and both are told the same f values. Prints the largest absolute
difference of the center, sigma (relative), ``v``, ``D`` and ``p_c`` so far. The reference
needs only numpy, so its module file is loaded from its venv (``--crfmnes``, default
``.peers/crfmnes``; see ``benchmarks/peers/crfmnes_run.py``) into this interpreter.

    python benchmarks/crfmnes_step_check.py --dim 10 --population 10 --generations 200
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os

import numpy as np
import torch

from pytorch_es.strategies import CRFMNES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_reference(venv: str):
    paths = glob.glob(os.path.join(venv, "lib", "python*", "site-packages", "crfmnes", "alg.py"))
    if not paths:
        raise SystemExit(f"crfmnes not found in {venv}: python3 -m venv {venv} && {venv}/bin/pip install "
                         "numpy crfmnes==1.0.0")
    spec = importlib.util.spec_from_file_location("crfmnes_alg", paths[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--crfmnes", default=os.path.join(ROOT, ".peers", "crfmnes"))
    args = parser.parse_args()
    alg = load_reference(args.crfmnes)
    n, lam = args.dim, args.population
    coefficients = 10 ** (6 * np.arange(n) / (n - 1))

    def ellipsoid(x: np.ndarray) -> float:
        return float(np.sum(coefficients * x.reshape(-1) ** 2))

    ours = CRFMNES(torch.ones(n, dtype=torch.float64), population_size=lam, sigma=0.5, maximize=False, seed=3)
    ref = alg.CRFMNES(n, ellipsoid, np.ones([n, 1]), 0.5, lam, v=ours.v.numpy().reshape(n, 1).copy(),
                      use_constraint_violation=False)
    worst = np.zeros(5)
    for _ in range(args.generations):
        population = ours.ask()
        half = population.noise_matrix().numpy()[0::2].T.copy()
        alg.np.random.randn = lambda *shape, half=half: half  # the reference's one draw per generation
        ref.one_iteration()
        ours.tell([ellipsoid(x) for x in population.members().numpy()], population=population)
        now = np.array([np.abs(ours.center.numpy() - ref.m.ravel()).max(), abs(ours.sigma / ref.sigma - 1),
                        np.abs(ours.v.numpy() - ref.v.ravel()).max(), np.abs(ours.D.numpy() - ref.D.ravel()).max(),
                        np.abs(ours.p_c.numpy() - ref.pc.ravel()).max()])
        worst = np.maximum(worst, now)
    print(f"dim {n}, population {lam}, {args.generations} generations, reference best f {ref.f_best:.3g}")
    print("largest differences: center {:.1e}, sigma (relative) {:.1e}, v {:.1e}, D {:.1e}, p_c {:.1e}".format(*worst))


if __name__ == "__main__":
    main()
