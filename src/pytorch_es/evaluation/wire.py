"""The wire messages between the pool's driver and its workers, and their packing.

What travels (Salimans et al. 2017, "Evolution Strategies as a Scalable Alternative
to Reinforcement Learning", section 2.1: workers share the noise and exchange only
scalars). Per generation:

* the center, **once** (shared memory for local processes, one ``ray.put`` for Ray),
  in one block with the distribution's other tensors: a per-parameter scale, a
  full-covariance transform or a low-rank factor, the bounds (:func:`pack_distribution`);
* to each worker, one :class:`GenerationSetup` (a scalar scale, noise seed and table size,
  generation, population size, ``problem.worker_state()``, a reference to the
  center) and one :class:`Task` per chunk of member indices (a ``range``);
* back from each worker, one :class:`~pytorch_es.evaluation.base.Evaluation` per
  chunk (rewards, env steps, the problem's payload), packed by :func:`pack_evaluation`.

Each worker rebuilds the noise table from the seed (cached per process) and every
member ``theta_i = center + scale * (A) s_i * eps_k(i)`` it evaluates
(:func:`unpack_population`); it never receives a parameter vector per member. The
problem itself is pickled once (:func:`dumps_problem`) and sent to each worker once
(and to a replacement worker when one starts).

The replies a worker sends are described in :class:`~pytorch_es.evaluation.worker.WorkerRuntime`.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import torch

from pytorch_es.core.noise import NoiseTable
from pytorch_es.core.population import Population
from pytorch_es.evaluation.base import Evaluation, Problem


@dataclass
class GenerationSetup:
    """What a worker needs, once per generation, to rebuild any member.

    ``center`` is a backend reference (a shared-memory name, a Ray object ref), never
    the vectors themselves: one published block holds, in this order, the center
    (``param_dim`` values), a per-parameter scale (``scale_numel`` values: 0 when
    ``scale`` is a float), the transform (``param_dim**2`` values when ``transform``)
    or the low-rank factor (``low_rank_rows * param_dim`` values) and the bounds
    (``2 * param_dim`` values when ``bounds``); ``center_dtype``/``dim``
    describe the block's bytes (``dim`` is its length in values).
    """

    epoch: int
    center: Any
    center_dtype: str
    dim: int
    sigma: float
    noise_seed: int
    noise_size: int
    noise_dtype: str
    generation: int
    size: int
    antithetic: bool
    worker_state: Any = None
    param_dim: int = -1
    scale_numel: int = 0
    transform: bool = False
    bounds: bool = False
    run_seed: int | None = None
    low_rank_rows: int = 0


def pack_distribution(population: Population) -> tuple[torch.Tensor, dict[str, Any]]:
    """The tensors of ``population`` as one flat block, and the setup fields describing it."""
    center = population.center.detach().reshape(-1)
    parts = [center]
    scale = population.scale
    if isinstance(scale, torch.Tensor):
        parts.append(scale.detach().reshape(-1).to(center))
    if population.transform is not None:
        parts.append(population.transform.detach().reshape(-1).to(center))
    if population.low_rank is not None:
        parts.append(population.low_rank.detach().reshape(-1).to(center))
    if population.low is not None:
        parts += [population.low.reshape(-1).to(center), population.high.reshape(-1).to(center)]
    block = torch.cat(parts) if len(parts) > 1 else center
    fields = {
        "param_dim": center.numel(),
        "scale_numel": scale.numel() if isinstance(scale, torch.Tensor) else 0,
        "transform": population.transform is not None,
        "bounds": population.low is not None,
        "low_rank_rows": 0 if population.low_rank is None else len(population.low_rank),
        "sigma": 0.0 if isinstance(scale, torch.Tensor) else float(scale),
    }
    return block, fields


def unpack_population(block: torch.Tensor, setup: GenerationSetup, noise: NoiseTable) -> Population:
    """Inverse of :func:`pack_distribution` on the worker (views into ``block``)."""
    dim = setup.param_dim if setup.param_dim >= 0 else setup.dim
    center, at = block[:dim], dim
    scale: float | torch.Tensor = setup.sigma
    if setup.scale_numel:
        scale, at = block[at : at + setup.scale_numel], at + setup.scale_numel
    transform = low_rank = low = high = None
    if setup.transform:
        transform, at = block[at : at + dim * dim].view(dim, dim), at + dim * dim
    if setup.low_rank_rows:
        rows = setup.low_rank_rows
        low_rank, at = block[at : at + rows * dim].view(rows, dim), at + rows * dim
    if setup.bounds:
        low, high = block[at : at + dim], block[at + dim : at + 2 * dim]
    return Population(
        center, scale, noise, setup.generation, setup.size, setup.antithetic,
        seed=setup.run_seed, transform=transform, low=low, high=high, low_rank=low_rank,
    )


@dataclass
class Task:
    """One chunk of member indices of generation ``epoch``."""

    epoch: int
    task_id: int
    indices: range | list[int]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def dtype_from_name(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype


def center_bytes(center: torch.Tensor) -> torch.Tensor:
    """The center as a flat CPU ``uint8`` tensor (any dtype, bfloat16 included)."""
    return center.detach().reshape(-1).contiguous().cpu().view(torch.uint8)


def center_from_bytes(data: bytes | bytearray | memoryview, dtype: str, dim: int) -> torch.Tensor:
    """Inverse of :func:`center_bytes`: a private copy of the center."""
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    center = raw.view(dtype_from_name(dtype))
    if center.numel() != dim:
        raise ValueError(f"center has {center.numel()} values, expected {dim}")
    return center


def dumps_problem(problem: Problem) -> bytes:
    """Pickle a problem for the workers: cloudpickle when available (lambdas, classes
    defined in ``__main__``), else the standard pickle."""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - cloudpickle comes with gymnasium and ray
        cloudpickle = None
    try:
        if cloudpickle is not None:
            return cloudpickle.dumps(problem, protocol=pickle.HIGHEST_PROTOCOL)
        return pickle.dumps(problem, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise TypeError(
            f"the problem ({type(problem).__name__}) must be picklable to run on worker "
            f"processes or Ray actors, but pickling failed: {type(error).__name__}: {error}. "
            "Keep open files, locks, environments and models out of its attributes (create "
            "them lazily in evaluate()), or use backend='serial' or 'threads'."
        ) from error


def pack_evaluation(evaluation: Evaluation) -> tuple:
    """An Evaluation as plain data for the wire: rewards as a numpy array, which pickles
    in microseconds (a torch tensor goes through torch's storage serialization)."""
    rewards = evaluation.rewards.detach().cpu()
    try:
        values: Any = rewards.numpy()
    except (TypeError, RuntimeError):  # a dtype numpy lacks (bfloat16): send floats
        values = rewards.tolist()
    return (list(evaluation.indices), values, evaluation.env_steps, evaluation.payload)


def unpack_evaluation(data: tuple) -> Evaluation:
    """Inverse of :func:`pack_evaluation` (bit-exact rewards)."""
    indices, values, env_steps, payload = data
    if isinstance(values, list):
        return Evaluation(indices, torch.tensor(values, dtype=torch.float64), env_steps, payload)
    if not values.flags.writeable:  # Ray hands out read-only views of its object store
        values = values.copy()
    return Evaluation(indices, torch.from_numpy(values), env_steps, payload)
