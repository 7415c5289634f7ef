"""Policies evaluated for a whole population at once (the old import path).

The code lives in one module per job; this module re-exports it:

- :mod:`pytorch_es.rl.policy`: the interface (:class:`Policy`, :class:`BoundPolicy`) and
  the registry of policy kinds (:func:`register_policy`, :func:`policy_from_config`);
- :mod:`pytorch_es.rl.spaces`: spaces <-> JSON and the :class:`ActionHead`;
- :mod:`pytorch_es.rl.mlp`: :class:`MLPPolicy` and :func:`make_policy`;
- :mod:`pytorch_es.rl.kernels`: the MLP's batched forward (:data:`ACTIVATIONS`).
"""

from pytorch_es.rl.kernels import ACTIVATIONS
from pytorch_es.rl.mlp import MLPPolicy, make_policy
from pytorch_es.rl.policy import BoundPolicy, Policy, check_config_parameters, policy_from_config, register_policy
from pytorch_es.rl.spaces import ActionHead, space_from_config, space_to_config

__all__ = [
    "ACTIVATIONS",
    "ActionHead",
    "BoundPolicy",
    "MLPPolicy",
    "Policy",
    "check_config_parameters",
    "make_policy",
    "policy_from_config",
    "register_policy",
    "space_from_config",
    "space_to_config",
]
