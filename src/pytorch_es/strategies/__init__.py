"""Ask/tell evolution strategies over torch tensors.

``get(name)`` returns a strategy class by its registered name, ``available()`` lists
the names (see :mod:`pytorch_es.strategies.registry`).
"""

from pytorch_es.strategies.base import Strategy
from pytorch_es.strategies.clipup import ClipUp
from pytorch_es.strategies.openai_es import OPTIMIZERS, OpenAIES
from pytorch_es.strategies.registry import available, get, register

__all__ = ["OPTIMIZERS", "ClipUp", "OpenAIES", "Strategy", "available", "get", "register"]
