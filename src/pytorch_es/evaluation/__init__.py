"""Evaluators: where a population's members are scored."""

from pytorch_es.evaluation.backend import WorkerSetupError
from pytorch_es.evaluation.base import (
    BatchFunctionProblem,
    Evaluation,
    Evaluator,
    FunctionProblem,
    GenerationResult,
    MemberEvaluationError,
    Problem,
    SerialEvaluator,
)
from pytorch_es.evaluation.factory import make_evaluator, resolve_backend
from pytorch_es.evaluation.processes import ProcessEvaluator
from pytorch_es.evaluation.threads import ThreadEvaluator


def __getattr__(name: str) -> object:
    if name == "RayEvaluator":  # imported lazily: Ray is an optional extra
        from pytorch_es.evaluation.ray_evaluator import RayEvaluator

        return RayEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BatchFunctionProblem",
    "Evaluation",
    "Evaluator",
    "FunctionProblem",
    "GenerationResult",
    "MemberEvaluationError",
    "Problem",
    "ProcessEvaluator",
    "RayEvaluator",
    "SerialEvaluator",
    "ThreadEvaluator",
    "WorkerSetupError",
    "make_evaluator",
    "resolve_backend",
]
