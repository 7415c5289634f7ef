"""The import path of the original PyTorch-ES (2018): ``from evolution.strategies import
EvolutionModule``. A thin re-export of :mod:`pytorch_es`."""
