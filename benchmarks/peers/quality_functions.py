"""The quality benchmark's test functions in numpy, for the peer runners (``crfmnes_run.py``,
``peer_run.py``), which run in venvs without torch or without our package.

They mirror ``make_function`` in ``benchmarks/strategies.py`` (f* = 0 for all):

    sphere             sum x_i^2
    ellipsoid          sum 10^(6 (i - 1) / (n - 1)) x_i^2
    rosenbrock         sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2
    rotated-ellipsoid  the ellipsoid of R x (R: the benchmark's fixed rotation, passed in)
    rastrigin          10 n + sum x_i^2 - 10 cos(2 pi x_i)

Each takes an array of shape ``(..., n)`` and returns ``(...)`` float64 values.
``strategies.py`` checks on a few points that each peer's values equal ours.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def make_function(name: str, n: int, rotation: list | None = None) -> Callable[[np.ndarray], np.ndarray]:
    coefficients = 10 ** (6 * np.arange(n, dtype=np.float64) / (n - 1))
    if name == "sphere":
        return lambda x: np.sum(x**2, axis=-1)
    if name == "ellipsoid":
        return lambda x: np.sum(coefficients * x**2, axis=-1)
    if name == "rosenbrock":
        return lambda x: np.sum(100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2, axis=-1)
    if name == "rotated-ellipsoid":
        if rotation is None:
            raise ValueError("rotated-ellipsoid needs the rotation matrix")
        rot = np.asarray(rotation, dtype=np.float64)
        return lambda x: np.sum(coefficients * (x @ rot.T) ** 2, axis=-1)
    if name == "rastrigin":
        return lambda x: 10 * n + np.sum(x**2 - 10 * np.cos(2 * np.pi * x), axis=-1)
    raise ValueError(f"unknown function {name!r}")
