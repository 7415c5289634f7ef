"""Ask/tell evolution strategies over torch tensors.

``get(name)`` returns a strategy class by its registered name, ``available()`` lists
the names (see :mod:`pytorch_es.strategies.registry`); the classes are also
importable from here (``from pytorch_es.strategies import CMAES``).
"""

from pytorch_es.strategies.ars import ARS
from pytorch_es.strategies.base import Strategy
from pytorch_es.strategies.cem import CEM
from pytorch_es.strategies.clipup import ClipUp
from pytorch_es.strategies.cma_es import CMAES
from pytorch_es.strategies.cr_fm_nes import CRFMNES
from pytorch_es.strategies.openai_es import OPTIMIZERS, OpenAIES
from pytorch_es.strategies.pgpe import PGPE
from pytorch_es.strategies.registry import available, get, register
from pytorch_es.strategies.restarts import BIPOPCMAES, IPOPCMAES, IPOPCRFMNES, Restarts
from pytorch_es.strategies.sep_cma_es import SepCMAES
from pytorch_es.strategies.snes import SNES
from pytorch_es.strategies.xnes import XNES

__all__ = [
    "ARS",
    "BIPOPCMAES",
    "CEM",
    "CMAES",
    "CRFMNES",
    "IPOPCMAES",
    "IPOPCRFMNES",
    "OPTIMIZERS",
    "PGPE",
    "SNES",
    "XNES",
    "ClipUp",
    "OpenAIES",
    "Restarts",
    "SepCMAES",
    "Strategy",
    "available",
    "get",
    "register",
]
