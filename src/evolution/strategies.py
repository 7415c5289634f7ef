"""``from evolution.strategies import EvolutionModule``, as in the original PyTorch-ES."""

from pytorch_es.evolution_module import EvolutionModule

__all__ = ["EvolutionModule"]
