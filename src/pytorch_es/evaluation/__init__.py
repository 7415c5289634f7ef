"""Evaluators: where a population's members are scored."""

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
from pytorch_es.evaluation.threads import ThreadEvaluator

__all__ = [
    "BatchFunctionProblem",
    "Evaluation",
    "Evaluator",
    "FunctionProblem",
    "GenerationResult",
    "MemberEvaluationError",
    "Problem",
    "SerialEvaluator",
    "ThreadEvaluator",
]
