"""pytorch-es: evolution strategies for PyTorch (and Keras 3) models.

The public names below are imported on first use (PEP 562 module ``__getattr__``), so
that ``import pytorch_es`` and the ``pytorch-es`` command's ``--help`` and usage errors
do not pay for importing torch (about 2.5 s). ``from pytorch_es import OpenAIES`` and
``pytorch_es.OpenAIES`` work as with eager imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see: the eager imports
    from pytorch_es.core import (
        NoiseTable,
        Population,
        centered_ranks,
        flatten,
        raw,
        unflatten,
        write_back,
        z_score,
    )
    from pytorch_es.evaluation import (
        BatchFunctionProblem,
        Evaluator,
        FunctionProblem,
        MemberEvaluationError,
        Problem,
        SerialEvaluator,
        ThreadEvaluator,
    )
    from pytorch_es.evolution_module import EvolutionModule
    from pytorch_es.io import UnsafeOrCorruptFileError, load_weights, save_weights
    from pytorch_es.strategies import ClipUp, OpenAIES, Strategy
    from pytorch_es.training.config import TrainConfig, resolve_config
    from pytorch_es.training.session import Run, RunResult, train

# Optional packages that plug into the layers below (see pytorch_es.plugins): imported
# the first time their objects are met, never by ``import pytorch_es`` itself.
from pytorch_es import plugins as _plugins  # imports nothing
from pytorch_es._version import __version__ as __version__

_plugins.declare("parameter_sources", "keras", "pytorch_es.keras")  # Keras models and variables
_plugins.declare("policy_kinds", "keras", "pytorch_es.keras.policy")  # policy.json of a Keras policy

# public name -> the submodule that defines it
_EXPORTS = {
    "NoiseTable": "pytorch_es.core",
    "Population": "pytorch_es.core",
    "centered_ranks": "pytorch_es.core",
    "flatten": "pytorch_es.core",
    "raw": "pytorch_es.core",
    "unflatten": "pytorch_es.core",
    "write_back": "pytorch_es.core",
    "z_score": "pytorch_es.core",
    "BatchFunctionProblem": "pytorch_es.evaluation",
    "Evaluator": "pytorch_es.evaluation",
    "FunctionProblem": "pytorch_es.evaluation",
    "MemberEvaluationError": "pytorch_es.evaluation",
    "Problem": "pytorch_es.evaluation",
    "SerialEvaluator": "pytorch_es.evaluation",
    "ThreadEvaluator": "pytorch_es.evaluation",
    "EvolutionModule": "pytorch_es.evolution_module",
    "UnsafeOrCorruptFileError": "pytorch_es.io",
    "load_weights": "pytorch_es.io",
    "save_weights": "pytorch_es.io",
    "ClipUp": "pytorch_es.strategies",
    "OpenAIES": "pytorch_es.strategies",
    "Strategy": "pytorch_es.strategies",
    "TrainConfig": "pytorch_es.training.config",
    "resolve_config": "pytorch_es.training.config",
    "Run": "pytorch_es.training.session",
    "RunResult": "pytorch_es.training.session",
    "train": "pytorch_es.training.session",
}
# submodules that ``import pytorch_es`` used to import eagerly: ``pytorch_es.core`` etc.
# still work as attributes after a bare ``import pytorch_es``
_SUBMODULES = ("core", "evaluation", "evolution_module", "io", "strategies", "training")

__all__ = [
    "BatchFunctionProblem",
    "ClipUp",
    "Evaluator",
    "EvolutionModule",
    "FunctionProblem",
    "MemberEvaluationError",
    "NoiseTable",
    "OpenAIES",
    "Population",
    "Problem",
    "Run",
    "RunResult",
    "SerialEvaluator",
    "Strategy",
    "ThreadEvaluator",
    "TrainConfig",
    "UnsafeOrCorruptFileError",
    "centered_ranks",
    "flatten",
    "load_weights",
    "raw",
    "resolve_config",
    "save_weights",
    "train",
    "unflatten",
    "write_back",
    "z_score",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
