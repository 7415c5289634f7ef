"""Old import path of the worker pool, kept so that existing imports keep working.

The pool now lives in four modules with one job each:

* :mod:`pytorch_es.evaluation.wire`: the messages between driver and workers, and their packing;
* :mod:`pytorch_es.evaluation.worker`: the worker runtime (inside a process or a Ray actor);
* :mod:`pytorch_es.evaluation.backend`: the backend interface (start, send, wait, kill);
* :mod:`pytorch_es.evaluation.scheduler`: chunking, dispatch, retries and timeouts.

Argument validators are in :mod:`pytorch_es.core.checks`.
"""

from pytorch_es.core.checks import check_timeout
from pytorch_es.evaluation.backend import Event, WorkerBackend, WorkerGoneError, WorkerSetupError
from pytorch_es.evaluation.scheduler import Chunk, PoolEvaluator, PoolStats, split_indices
from pytorch_es.evaluation.wire import (
    GenerationSetup,
    Task,
    center_bytes,
    center_from_bytes,
    dtype_from_name,
    dtype_name,
    dumps_problem,
    pack_distribution,
    pack_evaluation,
    unpack_evaluation,
    unpack_population,
)
from pytorch_es.evaluation.worker import WorkerRuntime, check_evaluation, error_message, format_remote

__all__ = [
    "Chunk",
    "Event",
    "GenerationSetup",
    "PoolEvaluator",
    "PoolStats",
    "Task",
    "WorkerBackend",
    "WorkerGoneError",
    "WorkerRuntime",
    "WorkerSetupError",
    "center_bytes",
    "center_from_bytes",
    "check_evaluation",
    "check_timeout",
    "dtype_from_name",
    "dtype_name",
    "dumps_problem",
    "error_message",
    "format_remote",
    "pack_distribution",
    "pack_evaluation",
    "split_indices",
    "unpack_evaluation",
    "unpack_population",
]
