"""Run the authors' CR-FM-NES (``crfmnes`` 1.0.0, Nomura and Ono) on the benchmark's test
functions, for ``benchmarks/strategies.py``. Runs in its own venv (numpy + crfmnes only):

    python3 -m venv .peers/crfmnes && .peers/crfmnes/bin/pip install numpy crfmnes==1.0.0

Reads one JSON object from stdin: ``{"function", "dim", "population", "sigma", "budget",
"target", "rotation" (a dim x dim list or null), "runs": [{"seed", "x0"}, ...]}``; writes a
JSON list with, per run, ``{"evaluations", "curve": [[evaluations, best f], ...]}``. A run
stops when the best f is below ``target`` or after ``budget`` evaluations.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from crfmnes import CRFMNES
from quality_functions import make_function  # beside this file


def run(job: dict, seed: int, x0: list) -> dict:
    n = job["dim"]
    function = make_function(job["function"], n, job.get("rotation"))
    best, curve = [float("inf")], []

    def counted(x: np.ndarray) -> float:
        value = float(function(np.asarray(x, dtype=np.float64).reshape(-1)))
        best[0] = min(best[0], value)
        return value

    es = CRFMNES(n, counted, np.asarray(x0, dtype=np.float64).reshape(n, 1), job["sigma"], job["population"],
                 seed=seed, use_constraint_violation=False)
    evaluations = 0
    while evaluations < job["budget"]:
        es.one_iteration()
        evaluations += job["population"]
        curve.append((evaluations, best[0]))
        if best[0] < job["target"]:
            break
    return {"evaluations": evaluations, "curve": curve}


def main() -> None:
    job = json.load(sys.stdin)
    json.dump([run(job, r["seed"], r["x0"]) for r in job["runs"]], sys.stdout)


if __name__ == "__main__":
    main()
