"""Ask/tell evolution strategies over torch tensors."""

from pytorch_es.strategies.base import Strategy
from pytorch_es.strategies.clipup import ClipUp
from pytorch_es.strategies.openai_es import OPTIMIZERS, OpenAIES

__all__ = ["OPTIMIZERS", "ClipUp", "OpenAIES", "Strategy"]
