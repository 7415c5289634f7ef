"""``TorchEnvProblem``: a whole generation on one device (CPU or CUDA), no host round trip per step.

The Gymnasium path (:class:`~pytorch_es.rl.problem.GymProblem`) steps numpy envs on
the host. Here, for the envs of :mod:`pytorch_es.rl.torch_envs`, everything of a
generation stays on ``device``:

1. members are built on the device from the noise table on the device
   (``theta_i = center + sigma * s_i * eps_{k(i)}``, one gather of the table);
2. the policy forward is one batched chain over all members: per layer
   ``x_{k+1}[i] = act(x_k[i] @ W_k[i] + b_k[i])`` with every member's weights in one
   ``(rows, in, out)`` tensor (``torch.baddbmm``; layers with at most 8 inputs are the
   sum over inputs in order, elementwise, which rounds like the numpy path, and layers
   with at most 8 outputs row-wise dot products: both faster than a thin ``bmm``);
3. env steps, masks and return accumulation are tensor operations on the device;
4. the host synchronises only every ``check_every`` steps, to stop once every episode
   has ended (and then to drop finished rows when half of them have);
5. the rewards come back once per generation; the strategy's update runs where its
   center lives (``OpenAIES(..., device=...)``).

It is a :class:`GymProblem` in everything else (policy, observation normalisation,
``policy.json``, checkpoints, ``worker_state``/``merge``), so a policy trained here is
evaluated and played with Gymnasium by ``pytorch-es eval/play``.

Seeds and start states: episode ``e`` of generation ``g`` starts from env seed
``episode_seeds(run_seed, g)[e]`` exactly as in ``GymProblem``, and the torch env
draws that start with Gymnasium's own generator (a handful of host draws: the
population shares its episode seeds), so for the same members a generation here
plays the same episodes as the Gymnasium path (tested on CPU). On CPU a seed gives
identical results run to run; on CUDA see ``docs/gpu.md``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from pytorch_es.core.checks import check_int
from pytorch_es.core.population import Population
from pytorch_es.evaluation.base import Evaluation
from pytorch_es.rl.kernels import ACTIVATIONS
from pytorch_es.rl.mlp import MLPPolicy
from pytorch_es.rl.policy import Policy
from pytorch_es.rl.problem import GymProblem, episode_seeds
from pytorch_es.rl.spaces import ActionHead
from pytorch_es.rl.torch_envs import TORCH_ENVS, TorchEnv, check_torch_env_id, make_torch_env

__all__ = [
    "DeviceMLP",
    "TorchEnvProblem",
    "check_device",
    "estimate_memory",
    "rollout_device",
]

# Layers with at most this many inputs run as a sum over inputs (elementwise, in order),
# those with at most this many outputs as row-wise dot products: CPU ``bmm`` on such thin
# matrices falls back to a slow scalar kernel (see ``pytorch_es.rl.kernels``).
_SUM_MAX_FAN_IN = 8


def check_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device``; ``ValueError`` for CUDA without CUDA (one line)."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise ValueError(f"device {str(device)!r} asked for, but CUDA is not available ({built}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"device {str(device)!r} asked for, but only {count} CUDA devices exist")
    elif device.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {str(device)!r}")
    return device


@contextlib.contextmanager
def _matmul_precision(device: torch.device, allow_tf32: bool) -> Iterator[None]:
    """TF32 off for the policy forward on CUDA (unless asked for), restored afterwards."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = bool(allow_tf32)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


# ---- the batched policy ----------------------------------------------------------------


class DeviceMLP:
    """An :class:`MLPPolicy` with ``rows`` members' weights laid out on their device.

    ``forward(obs)`` maps float32 ``(rows, obs_dim)`` observations to one action per row
    (int64 for ``Discrete``, float32 ``(rows, *shape)`` for ``Box``), the same function
    as ``policy.forward`` (the same layout, activation and head; a ``Discrete(2)`` head
    compares ``x . (w_1 - w_0)`` with ``b_0 - b_1`` like the numpy path). Every
    operation is row-wise, so :meth:`select` (keeping some rows) changes no row's actions.
    """

    def __init__(self, policy: MLPPolicy, members: torch.Tensor) -> None:
        if not isinstance(policy, MLPPolicy):
            raise TypeError(f"the torch rollout runs MLP policies, got {type(policy).__name__}")
        self.policy = policy
        n = members.shape[0]
        shapes = list(policy.parameter_shapes().items())
        self.modes: list[str] = []
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        self.binary = isinstance(policy.action_space, spaces.Discrete) and int(policy.action_space.n) == 2
        offset = 0
        layers = len(shapes) // 2
        for k in range(layers):
            fan_in, fan_out = shapes[2 * k][1]
            weight = members[:, offset : offset + fan_in * fan_out].reshape(n, fan_in, fan_out)
            offset += fan_in * fan_out
            bias = members[:, offset : offset + fan_out]
            offset += fan_out
            if k == layers - 1 and self.binary:
                self.modes.append("diff")
                self.weights.append(torch.sub(weight[:, :, 1], weight[:, :, 0]))  # (n, in)
                self.biases.append(torch.sub(bias[:, 0], bias[:, 1]))  # threshold (n,)
            elif fan_in <= _SUM_MAX_FAN_IN:
                self.modes.append("sum")
                self.weights.append(weight.transpose(0, 1).contiguous())  # (in, n, out): row i = input i
                self.biases.append(bias.contiguous())
            elif fan_out <= _SUM_MAX_FAN_IN:
                self.modes.append("dot")
                self.weights.append(weight.transpose(1, 2).contiguous())  # (n, out, in)
                self.biases.append(bias.contiguous())
            else:
                self.modes.append("bmm")
                self.weights.append(weight.contiguous())
                self.biases.append(bias.reshape(n, 1, fan_out).contiguous())
        self.activation = ACTIVATIONS[policy.activation]
        self._head_setup(members.device)

    def _head_setup(self, device: torch.device) -> None:
        space = self.policy.action_space
        self.start = int(space.start) if isinstance(space, spaces.Discrete) else 0
        # the policy's own head (the same function), its bounds on the device
        self._head = ActionHead(space, self.policy.action_mode).to(device).forward

    def __len__(self) -> int:
        return self.biases[0].shape[0]

    def select(self, rows: torch.Tensor) -> None:
        """Keep only rows ``rows`` (int64, on the device), in that order."""
        for k, mode in enumerate(self.modes):
            self.weights[k] = self.weights[k].index_select(1 if mode == "sum" else 0, rows)
            self.biases[k] = self.biases[k].index_select(0, rows)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for k, (mode, weight, bias) in enumerate(zip(self.modes, self.weights, self.biases, strict=True)):
            if mode == "diff":  # argmax of 2 logits: x . (w_1 - w_0) > b_0 - b_1 (ties pick 0)
                return torch.mul(x, weight).sum(1).gt(bias).to(torch.int64).add_(self.start)
            if mode == "sum":  # sum over inputs in order, then the bias (the numpy path's einsum)
                y = x[:, 0:1] * weight[0]
                for i in range(1, weight.shape[0]):
                    y = y.add_(x[:, i : i + 1] * weight[i])
                y = y.add_(bias)
            elif mode == "dot":  # few outputs: one row-wise dot product per output
                y = torch.mul(x.unsqueeze(1), weight).sum(2).add_(bias)
            else:
                y = torch.baddbmm(bias, x.unsqueeze(1), weight).squeeze(1)
            x = self.activation(y) if k < last else y
        return self._head(x)


# ---- the device rollout -----------------------------------------------------------------


class _Normalization:
    """The frozen normaliser of a generation on the device (``ObservationNormalizer.normalize``)."""

    def __init__(self, normalizer: Any, device: torch.device) -> None:
        self.mean = normalizer._mean32.to(device)
        self.inv_std = normalizer._inv_std32.to(device)
        self.clip = normalizer.clip
        self.shift = normalizer.mean.to(device=device, dtype=torch.float64)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.sub(self.mean).mul_(self.inv_std).clamp_(-self.clip, self.clip)


def rollout_device(
    env: TorchEnv,
    net: DeviceMLP,
    seeds: Sequence[int] | None,
    *,
    max_steps: int,
    check_every: int = 8,
    normalization: _Normalization | None = None,
    stats: bool = False,
    start_state: torch.Tensor | None = None,
    compact: bool = True,
    cuda_graph: bool = False,
) -> dict[str, torch.Tensor]:
    """One episode in every sub-env of ``env``; row ``j`` of ``net`` acts in sub-env ``j``.

    Sub-env ``j`` starts from ``seeds[j]`` (Gymnasium's start for that seed) or from
    ``start_state[j]``. A row is masked from its first ``terminated or truncated`` on;
    returns are summed in float64 in time order (like ``rollout_batch``). Every
    ``check_every`` steps the host reads how many rows still run: it stops when none do,
    and keeps only the running rows once half have finished (``compact``).

    ``cuda_graph`` (CUDA only): the step (forward, env step, accumulation) is captured once
    as a CUDA graph and replayed, one launch per step instead of one per operation; rows
    are never dropped then (the graph's shapes are fixed). The same kernels in the same
    order as the eager step, so the same numbers as ``compact=False``.

    Returns ``{"returns": float64 (m,), "lengths": int64 (m,)}`` on the device, plus
    ``"sums"`` and ``"squares"`` (float64 ``(m, obs_dim)``, shifted by the normaliser's
    mean) with ``stats``.
    """
    m = env.num_envs
    if len(net) != m:
        raise ValueError(f"{len(net)} policy rows for {m} sub-envs")
    check_every = check_int("check_every", check_every)
    device = env.device
    if cuda_graph and device.type != "cuda":
        raise ValueError(f"cuda_graph needs a CUDA device, the envs are on {device}")
    obs = env.reset(state=start_state) if start_state is not None else env.reset(seeds)
    acc = {
        "returns": torch.zeros(m, dtype=torch.float64, device=device),
        "lengths": torch.zeros(m, dtype=torch.int64, device=device),
        "active": torch.ones(m, dtype=torch.bool, device=device),
    }
    if stats:
        acc["sums"] = torch.zeros(m, obs.shape[1], dtype=torch.float64, device=device)
        acc["squares"] = torch.zeros(m, obs.shape[1], dtype=torch.float64, device=device)
    shift = normalization.shift if (stats and normalization is not None) else None

    def step(obs: torch.Tensor) -> torch.Tensor:
        """One step of every row; the accumulators in ``acc`` are updated in place."""
        active = acc["active"]
        if stats:
            x = obs.to(torch.float64)
            if shift is not None:
                x = x.sub_(shift)
            x = x.mul_(active.unsqueeze(1))
            acc["sums"] += x
            acc["squares"].addcmul_(x, x)
        o = normalization(obs) if normalization is not None else obs
        actions = net(o)
        obs, rewards, terminated, truncated = env.step(actions)
        acc["returns"] += torch.where(active, rewards.to(torch.float64), 0.0)
        acc["lengths"] += active
        active &= ~(terminated | truncated)
        return obs

    if cuda_graph:
        return _rollout_graphed(env, step, obs, acc, max_steps, check_every)
    full: dict[str, torch.Tensor] | None = None  # full-size results once rows were dropped
    index: torch.Tensor | None = None  # original row of each current row
    for t in range(max_steps):
        obs = step(obs)
        if (t + 1) % check_every and t + 1 < max_steps:
            continue
        running = int(acc["active"].sum())
        if running == 0:
            break
        if compact and running * 2 <= len(net):
            keep = torch.nonzero(acc["active"]).squeeze(1)
            if full is None:
                full = {k: v.clone() for k, v in acc.items() if k != "active"}
                index = torch.arange(m, device=device)
            else:
                _write_back(full, index, acc)
            index = index.index_select(0, keep)
            for key in acc:
                acc[key] = acc[key].index_select(0, keep)
            obs = obs.index_select(0, keep)
            env.select(keep)
            net.select(keep)
    if full is None:
        return {k: v for k, v in acc.items() if k != "active"}
    _write_back(full, index, acc)
    return full


def _rollout_graphed(env: TorchEnv, step: Any, obs: torch.Tensor, acc: dict[str, torch.Tensor],
                     max_steps: int, check_every: int) -> dict[str, torch.Tensor]:
    """``step`` captured as a CUDA graph over fixed tensors, replayed once per env step."""
    device = env.device
    names = ("state", "steps", *env._row_buffers())
    static = {name: getattr(env, name).clone() for name in names}
    static_obs = obs.clone()

    def body() -> None:
        for name in names:  # the env reads the fixed tensors ...
            setattr(env, name, static[name])
        new_obs = step(static_obs)
        for name in names:  # ... and its new state is copied back into them
            static[name].copy_(getattr(env, name))
        static_obs.copy_(new_obs)

    mutable = [static_obs, *static.values(), *acc.values()]
    saved = [t.clone() for t in mutable]
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up outside the capture (cuBLAS handles, allocator)
        for _ in range(2):
            body()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()
    for tensor, value in zip(mutable, saved, strict=True):  # undo the warm-up steps
        tensor.copy_(value)
    for t in range(max_steps):
        graph.replay()
        if ((t + 1) % check_every == 0 or t + 1 == max_steps) and not bool(acc["active"].any()):
            break
    for name in names:
        setattr(env, name, static[name])
    return {k: v for k, v in acc.items() if k != "active"}


def _write_back(full: dict[str, torch.Tensor], index: torch.Tensor, acc: dict[str, torch.Tensor]) -> None:
    for key, value in full.items():
        value.index_copy_(0, index, acc[key])


# ---- memory ---------------------------------------------------------------------------


def _free_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


# The Python lists of one generation on the host (member indices, rewards): ~36 bytes an int
_HOST_BYTES_PER_MEMBER = 120


def estimate_memory(policy: Policy, env_cls: type[TorchEnv], members: int, episodes: int = 1, *,
                    dtype: torch.dtype = torch.float32, obs_norm: bool = False,
                    host: bool = False) -> dict[str, int]:
    """Bytes one generation of ``members`` x ``episodes`` rows needs on its device, by part.

    ``members``: the population matrix (float32 ``members x P``); ``weights``: its
    per-layer copy, one per row; ``activations``: two buffers per layer; ``envs``: the
    env state, observations and the step's temporaries; ``rollout``: returns, lengths,
    masks (and the observation sums with ``obs_norm``); ``host``: add the generation's
    Python lists (indices, rewards), which share the memory when the device is the CPU.
    """
    rows = members * episodes
    p = policy.num_parameters
    widths = [shape[0] for name, shape in policy.parameter_shapes().items() if name.endswith(".bias")]
    size = torch.finfo(dtype).bits // 8
    env = env_cls.__new__(env_cls)
    env.dtype = dtype
    obs_dim = int(np.prod(env_cls.observation_space.shape))
    parts = {
        "members": members * p * 4,
        "weights": rows * p * 4,
        "activations": rows * (sum(widths) + obs_dim) * 4 * 2,
        "envs": rows * (env.state_bytes_per_env() + env_cls.state_dim * size * 8),
        "rollout": rows * (8 + 8 + 2 + 8) + (rows * obs_dim * 8 * 4 if obs_norm else 0),
        "noise offsets": members * 8,
    }
    if host:
        parts["host lists"] = members * _HOST_BYTES_PER_MEMBER
    parts["total"] = sum(parts.values())
    return parts


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


# ---- the problem ------------------------------------------------------------------------


class TorchEnvProblem(GymProblem):
    """A :class:`GymProblem` whose rollouts run on ``device`` with torch-native envs.

    Args:
        env_id: one of :data:`pytorch_es.rl.torch_envs.TORCH_ENVS` (``ValueError``
            listing them otherwise).
        policy, episodes_per_member, max_steps, obs_norm, obs_clip: as ``GymProblem``
            (the policy must be an MLP: the default, a dict of MLP options or hidden sizes).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (``ValueError`` if CUDA is missing).
        dtype: the env state's dtype (float32; float64 for checks). The policy runs in float32.
        check_every: steps between the host checks of "has every episode ended?".
        allow_tf32: let CUDA matmuls of the policy forward use TF32 (default off: full
            float32 products; see ``docs/gpu.md``).
        memory_fraction: refuse a generation whose estimate exceeds this share of the
            device's free memory (a clear ``ValueError`` instead of an out-of-memory error).
        cuda_graph: replay each env step as one captured CUDA graph (CUDA only; finished
            rows are then masked, never dropped; see :func:`rollout_device`).
    """

    def __init__(
        self,
        env_id: str,
        policy: Policy | dict[str, Any] | Sequence[int] | None = None,
        *,
        episodes_per_member: int = 1,
        max_steps: int | None = None,
        obs_norm: bool | None = None,
        obs_clip: float = 5.0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        check_every: int = 8,
        allow_tf32: bool = False,
        memory_fraction: float = 0.9,
        cuda_graph: bool = False,
    ) -> None:
        check_torch_env_id(env_id)
        self.device = check_device(device)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        super().__init__(env_id, policy, episodes_per_member=episodes_per_member, max_steps=max_steps,
                         obs_norm=obs_norm, obs_clip=obs_clip)
        if not isinstance(self.policy, MLPPolicy):
            raise TypeError(f"vector='torch' runs MLP policies, got {type(self.policy).__name__}")
        self.dtype = dtype
        self.check_every = check_int("check_every", check_every)
        self.allow_tf32 = bool(allow_tf32)
        if not 0 < memory_fraction <= 1:
            raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction!r}")
        self.memory_fraction = float(memory_fraction)
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph needs a CUDA device, got device {str(self.device)!r}")
        self.cuda_graph = bool(cuda_graph)
        self.env_cls = TORCH_ENVS[self.env_id]

    @property
    def vectorized(self) -> bool:
        """Always: one in-process call evaluates the whole population on the device."""
        return True

    # ---- members ------------------------------------------------------------------------

    def _members(self, population: Population, indices: list[int]) -> torch.Tensor:
        """Members ``indices`` as a float32 matrix on the device, built from the table there.

        ``theta_i = center + sigma * s_i * eps_{k(i)}`` with one gather and one addcmul
        when the population is the plain (center, sigma, antithetic) kind, checked on a
        few members against ``population.members``; ``population.members`` otherwise
        (which builds the matrix member by member in Python: about 5 us per member).
        """
        fast = self._fast_members(population, indices)
        if fast is not None:
            return fast
        return population.members(indices).detach().to(self.device, torch.float32)

    def _fast_members(self, population: Population, indices: list[int]) -> torch.Tensor | None:
        center, noise = population.center, population.noise
        sigma = getattr(population, "sigma", None)
        if not isinstance(sigma, (int, float)) or not hasattr(noise, "gather"):
            return None
        if (isinstance(getattr(population, "scale", None), torch.Tensor)
                or getattr(population, "transform", None) is not None or getattr(population, "low", None) is not None):
            return None  # a per-parameter scale (sigma is then its mean), a transform, or bounds
        whole = len(indices) == population.size and indices == list(range(population.size))  # C-speed compare
        idx = torch.arange(population.size) if whole else torch.tensor(indices, dtype=torch.int64)
        if population.antithetic:
            pairs, signs = idx // 2, 1.0 - 2.0 * (idx % 2).to(center.dtype)
        else:
            pairs, signs = idx, torch.ones(len(idx), dtype=center.dtype)
        slices = noise.gather(population.offsets.index_select(0, pairs), population.dim)
        slices = slices.to(device=center.device, dtype=center.dtype)
        scale = (signs * float(sigma)).to(center.device).unsqueeze(1)
        members = torch.addcmul(center.unsqueeze(0), slices, scale)
        probe = sorted({0, 1 % len(indices), len(indices) // 2, len(indices) - 1})
        expected = population.members([indices[row] for row in probe])  # the Population's own numbers
        if not torch.equal(members[probe], expected.to(members.dtype)):
            return None
        return members.detach().to(self.device, torch.float32)

    def _check_memory(self, members: int) -> None:
        parts = estimate_memory(self.policy, self.env_cls, members, self.episodes_per_member,
                                dtype=self.dtype, obs_norm=self.normalizer is not None,
                                host=self.device.type == "cpu")
        free = _free_bytes(self.device)
        if free is None or parts["total"] <= self.memory_fraction * free:
            return
        detail = ", ".join(f"{k} {_gib(v)}" for k, v in parts.items() if k != "total")
        raise ValueError(
            f"a population of {members:,} members x {self.episodes_per_member} episode(s) "
            f"({self.policy.num_parameters} parameters each) needs about {_gib(parts['total'])} on "
            f"{self.device} ({detail}), but only {_gib(free)} is free; use a smaller population"
        )

    # ---- Problem protocol ------------------------------------------------------------------

    def _env(self, rows: int, max_steps: int | None = None) -> TorchEnv:
        limit = self._env_limit if max_steps is None else max_steps
        return make_torch_env(self.env_id, rows, device=self.device, dtype=self.dtype, max_episode_steps=limit)

    def _run_seed(self, population: Population) -> int:
        seed = getattr(population, "seed", None)
        return int(population.noise.seed if seed is None else seed)

    def evaluate(self, population: Population, indices: Sequence[int]) -> Evaluation:
        """Mean return of members ``indices`` over ``episodes_per_member`` episodes each."""
        self._check_memory(len(indices))  # before anything of the population's size is built
        indices = list(indices) if isinstance(indices, range) else [int(i) for i in indices]
        if not indices:
            return Evaluation([], torch.zeros(0, dtype=torch.float64))
        if population.dim != self.policy.num_parameters:
            raise ValueError(
                f"population members have {population.dim} parameters, but the "
                f"{self.policy.describe()} expects {self.policy.num_parameters}"
            )
        episodes = self.episodes_per_member
        with torch.inference_mode(), _matmul_precision(self.device, self.allow_tf32):
            members = self._members(population, indices)
            if episodes > 1:
                members = members.repeat_interleave(episodes, dim=0)  # row j = member j // E
            net = DeviceMLP(self.policy, members)
            del members
            normalization = None if self.normalizer is None else _Normalization(self.normalizer, self.device)
            env = self._env(len(indices) * episodes)
            # row j plays episode j % E: the E starts drawn once, tiled on the device
            seeds = episode_seeds(self._run_seed(population), population.generation, episodes)
            start = env.start_states(seeds).repeat(len(indices), 1)
            result = rollout_device(
                env, net, None, start_state=start, max_steps=self.max_steps, check_every=self.check_every,
                normalization=normalization, stats=normalization is not None, cuda_graph=self.cuda_graph,
            )
            del net
            returns = result["returns"].reshape(len(indices), episodes).cpu()
            env_steps = int(result["lengths"].sum())
            payload = None
            if normalization is not None:
                payload = self._payload(result, len(indices), episodes)
        rewards = returns[:, 0].clone()
        for e in range(1, episodes):  # in episode order, as GymProblem
            rewards += returns[:, e]
        rewards /= episodes
        return Evaluation(indices, rewards, env_steps=env_steps, payload=payload)

    def _payload(self, result: dict[str, torch.Tensor], n: int, episodes: int) -> dict[str, torch.Tensor]:
        payload = {
            "shift": self.normalizer.mean.clone(),
            "counts": result["lengths"].to(torch.float64).cpu(),
            "sums": result["sums"].cpu(),
            "squares": result["squares"].cpu(),
        }
        if episodes > 1:
            for key in ("counts", "sums", "squares"):
                value = payload[key].reshape(n, episodes, *payload[key].shape[1:])
                total = value[:, 0].clone()
                for e in range(1, episodes):
                    total += value[:, e]
                payload[key] = total
        return payload

    def evaluate_policy(
        self, vector: torch.Tensor, *, episodes: int = 100, seed: int = 1000, max_steps: int | None = None
    ) -> torch.Tensor:
        """Greedy returns of ``vector`` on env seeds ``seed .. seed + episodes - 1`` (float64, CPU),
        on the device; the same episodes as ``GymProblem.evaluate_policy``."""
        check_int("episodes", episodes)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        vector = self.policy.check_vector(vector)
        spec_limit = self.env_cls.spec_max_episode_steps
        limit = spec_limit if max_steps is None else check_int("max_steps", max_steps)
        with torch.inference_mode(), _matmul_precision(self.device, self.allow_tf32):
            members = vector.to(self.device).unsqueeze(0).expand(episodes, -1)
            net = DeviceMLP(self.policy, members)
            normalization = None if self.normalizer is None else _Normalization(self.normalizer, self.device)
            result = rollout_device(
                self._env(episodes, max(limit, spec_limit)), net, list(range(seed, seed + episodes)),
                max_steps=limit, check_every=self.check_every, normalization=normalization,
                cuda_graph=self.cuda_graph,
            )
        return result["returns"].cpu()

    def __repr__(self) -> str:
        return (
            f"TorchEnvProblem({self.env_id!r}, {self.policy.describe()}, device={self.device}, "
            f"episodes_per_member={self.episodes_per_member}, max_steps={self.max_steps}, "
            f"obs_norm={self.normalizer is not None})"
        )
