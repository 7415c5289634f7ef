"""sep-CMA-ES: CMA-ES with a diagonal covariance matrix, O(dim) per member.

Ros and Hansen (2008), "A Simple Modification in CMA-ES Achieving Linear Time and
Space Complexity" (PPSN X). The updates of :mod:`pytorch_es.strategies.cma_es` with
``C = diag(c)``, ``B = I``, ``D = sqrt(c)``: members ``x_i = m + sigma D z_i`` (the
population's per-parameter ``scale`` is ``sigma D``), ``C^{-1/2} y_i = z_i``, and

    c <- (1 + c_1 delta(h_s) - c_1 - c_mu sum_j w_j) c + c_1 p_c**2 + c_mu sum_i w_i^o y_i**2

with the faster learning rates of the paper in the refined form pycma uses:
``c_1 = 1 / (n + 2 sqrt(n) + mu_eff / n)``,
``c_mu = (0.25 + mu_eff + 1/mu_eff - 2) / (n + 4 sqrt(n) + mu_eff / 2)`` and
``c_c = (1 + 1/n + mu_eff/n) / (sqrt(n) + 1/n + 2 mu_eff/n)``. No dimension limit.
"""

from __future__ import annotations

from pytorch_es.strategies.cma_es import CMAES


class SepCMAES(CMAES):
    """sep-CMA-ES; arguments as :class:`~pytorch_es.strategies.cma_es.CMAES`."""

    name = "sep-cma-es"
    separable = True
