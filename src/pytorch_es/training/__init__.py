"""Layer 5: the training loop (ask -> evaluate -> tell) and its callbacks."""

from pytorch_es.training.callbacks import Callback, CallbackList, GoalStop, LambdaCallback
from pytorch_es.training.checkpoint import (
    CHECKPOINT_NAME,
    PREVIOUS_NAME,
    CheckpointCallback,
    CheckpointError,
    config_differences,
    load_checkpoint,
    save_checkpoint,
)
from pytorch_es.training.loop import Trainer, TrainResult
from pytorch_es.training.metrics import FIELDS, MetricsCSV, TensorBoardLogger, read_metrics
from pytorch_es.training.progress import ProgressCallback

__all__ = [
    "CHECKPOINT_NAME",
    "FIELDS",
    "PREVIOUS_NAME",
    "Callback",
    "CallbackList",
    "CheckpointCallback",
    "CheckpointError",
    "GoalStop",
    "LambdaCallback",
    "MetricsCSV",
    "ProgressCallback",
    "TensorBoardLogger",
    "TrainResult",
    "Trainer",
    "config_differences",
    "load_checkpoint",
    "read_metrics",
    "save_checkpoint",
]
