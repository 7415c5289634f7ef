"""pytorch-es: evolution strategies for PyTorch (and Keras 3) models."""

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

__version__ = "0.2.0"

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
    "SerialEvaluator",
    "Strategy",
    "ThreadEvaluator",
    "UnsafeOrCorruptFileError",
    "centered_ranks",
    "flatten",
    "load_weights",
    "raw",
    "save_weights",
    "unflatten",
    "write_back",
    "z_score",
]
