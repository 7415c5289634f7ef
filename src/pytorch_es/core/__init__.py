"""Pure core: flat parameter vectors, reproducible noise, the search distribution, fitness
shaping and argument checks (``core.checks``)."""

from pytorch_es.core.noise import NoiseTable, default_table_size, mix_seed
from pytorch_es.core.parameters import (
    as_parameter_list,
    flatten,
    num_parameters,
    register_parameter_source,
    unflatten,
    write_back,
)
from pytorch_es.core.population import Population
from pytorch_es.core.shaping import FITNESS_SHAPINGS, centered_ranks, get_fitness_shaping, raw, z_score

__all__ = [
    "FITNESS_SHAPINGS",
    "NoiseTable",
    "Population",
    "as_parameter_list",
    "centered_ranks",
    "default_table_size",
    "flatten",
    "get_fitness_shaping",
    "mix_seed",
    "num_parameters",
    "raw",
    "register_parameter_source",
    "unflatten",
    "write_back",
    "z_score",
]
