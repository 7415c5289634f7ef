"""Policies evaluated for a whole population at once.

A :class:`Policy` maps a flat parameter vector and an observation to an action. Its
key method is *batched over members*: ``forward(members, obs)`` takes a ``(n, P)``
matrix whose row ``i`` is member ``i``'s parameters and a ``(n, obs_dim)`` batch whose
row ``i`` is member ``i``'s observation, and returns one action per row. The MLP does
this with one batched product per layer over per-member weights::

    x_{k+1}[i] = act(x_k[i] @ W_k[i] + b_k[i]),   W_k = members[:, a:b].view(n, in, out)

(``torch.baddbmm`` for layers with ``in * out >= 400``; below that CPU ``bmm`` falls back
to a slow scalar kernel, so small layers are elementwise passes over the whole
population, see :class:`_BoundMLP`), so a generation costs a few array operations per
step, not a Python loop over members. :meth:`Policy.bind` lays the weights out once per
generation.

Action heads: ``Discrete(n)`` -> ``argmax`` of ``n`` logits; ``Box`` -> ``"squash"``
(``low + (tanh(y) + 1) / 2 * (high - low)``, identity on unbounded dimensions) or
``"clip"`` (``clamp(y, low, high)``).
"""

from __future__ import annotations

import importlib
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from pytorch_es.rl.envs import check_spaces
from pytorch_es.rl.normalization import ObservationNormalizer

__all__ = [
    "ACTIVATIONS",
    "ActionHead",
    "BoundPolicy",
    "MLPPolicy",
    "Policy",
    "make_policy",
    "policy_from_config",
    "register_policy",
    "space_from_config",
    "space_to_config",
]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh_,
    "relu": torch.relu_,
    "sigmoid": torch.sigmoid_,
    "elu": lambda x: torch.nn.functional.elu_(x),
    "selu": lambda x: torch.nn.functional.selu_(x),
    "gelu": torch.nn.functional.gelu,
    "silu": lambda x: torch.nn.functional.silu(x, inplace=True),
    "identity": lambda x: x,
}


# ---- spaces <-> JSON ------------------------------------------------------------------


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values, np.float64).ravel()]


def space_to_config(space: spaces.Space) -> dict[str, Any]:
    """A JSON-able description of a Box or Discrete space (infinite bounds -> ``None``)."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "low": _finite_or_none(space.low),
            "high": _finite_or_none(space.high),
            "dtype": str(space.dtype),
        }
    raise ValueError(f"cannot describe a {type(space).__name__} space {space}")


def space_from_config(config: dict[str, Any]) -> spaces.Space:
    """Inverse of :func:`space_to_config`."""
    try:
        if config["type"] == "Discrete":
            return spaces.Discrete(int(config["n"]), start=int(config.get("start", 0)))
        if config["type"] == "Box":
            shape = tuple(int(s) for s in config["shape"])
            dtype = np.dtype(config.get("dtype", "float32"))
            low = np.array([-np.inf if v is None else v for v in config["low"]], dtype).reshape(shape)
            high = np.array([np.inf if v is None else v for v in config["high"]], dtype).reshape(shape)
            return spaces.Box(low, high, shape, dtype=dtype)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"invalid space description {config!r}: {error}") from None
    raise ValueError(f"unsupported space type {config.get('type')!r} in {config!r}")


# ---- the policy abstraction -------------------------------------------------------------


class BoundPolicy:
    """A policy with its members fixed: ``bound(obs) -> actions`` for those rows.

    ``select(rows)`` keeps only some rows (used when finished members drop out of a
    rollout). The default calls ``policy.forward`` each step; subclasses precompute.
    """

    def __init__(self, policy: Policy, members: torch.Tensor) -> None:
        self.policy = policy
        self.members = members

    def __len__(self) -> int:
        return self.members.shape[0]

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.forward(self.members, obs)

    def select(self, rows: torch.Tensor) -> BoundPolicy:
        return self.policy.bind(self.members.index_select(0, rows))


class Policy(ABC):
    """What a Gymnasium problem needs from a policy.

    * ``num_parameters``: the length ``P`` of a member's flat parameter vector;
    * ``forward(members, obs) -> actions``: batched over members, ``members`` is
      ``(n, P)`` and ``obs`` is ``(n, obs_dim)`` float32 (already normalised); returns
      int64 ``(n,)`` for ``Discrete`` actions (indices from 0) or float ``(n, *shape)``
      for ``Box`` actions, within the bounds;
    * ``initial_parameters(seed) -> (P,)`` tensor: the starting center;
    * ``config() -> dict``: JSON-able architecture (with ``"type"``), so
      :func:`policy_from_config` rebuilds it;
    * optional ``bind(members)`` (precompute per-generation views),
      ``named_parameters(vector)`` / ``vector_from_named(tensors)`` (weights on disk).

    An MLP is one implementation; a Keras model wrapper is another.
    """

    observation_space: spaces.Box
    action_space: spaces.Space
    type_name: str = "policy"

    @property
    @abstractmethod
    def num_parameters(self) -> int: ...

    @abstractmethod
    def forward(self, members: torch.Tensor, obs: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def initial_parameters(self, seed: int = 0) -> torch.Tensor: ...

    @abstractmethod
    def config(self) -> dict[str, Any]: ...

    def bind(self, members: torch.Tensor) -> BoundPolicy:
        return BoundPolicy(self, members)

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.observation_space.shape))

    def describe(self) -> str:
        return f"{self.type_name} policy with {self.num_parameters} parameters"

    def check_vector(self, vector: torch.Tensor, name: str = "parameters") -> torch.Tensor:
        """``vector`` as a float (P,) CPU tensor, or ``ValueError`` showing both shapes."""
        if not isinstance(vector, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(vector).__name__}")
        if vector.dim() != 1 or vector.numel() != self.num_parameters:
            raise ValueError(
                f"{name} has shape {tuple(vector.shape)}, but the {self.describe()} expects "
                f"({self.num_parameters},)"
            )
        if not vector.is_floating_point():
            raise TypeError(f"{name} has dtype {vector.dtype}; expected floating point")
        return vector.detach().to("cpu", torch.float32)

    def check_members(self, members: torch.Tensor) -> torch.Tensor:
        if members.dim() != 2 or members.shape[1] != self.num_parameters:
            raise ValueError(
                f"members have shape {tuple(members.shape)}, but the {self.describe()} expects "
                f"(n, {self.num_parameters})"
            )
        return members.detach().to("cpu", torch.float32)

    def named_parameters(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named tensors of ``vector`` (for ``policy.safetensors``)."""
        return {"parameters": self.check_vector(vector).clone()}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"parameters": (self.num_parameters,)}

    def vector_from_named(self, tensors: dict[str, torch.Tensor], source: str = "weights") -> torch.Tensor:
        """Inverse of :meth:`named_parameters`; ``ValueError`` showing both shapes on mismatch."""
        expected = self.parameter_shapes()
        got = {k: tuple(v.shape) for k, v in tensors.items()}
        if got != expected:
            raise ValueError(
                f"{source} do not match the {self.describe()}: {source} have "
                f"{_shapes_text(got)}, the policy expects {_shapes_text(expected)}"
            )
        return torch.cat([tensors[k].detach().reshape(-1).to(torch.float32) for k in expected])

    def act(self, vector: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """The action of one parameter vector for one (normalised) observation."""
        return self.forward(vector.unsqueeze(0), obs.reshape(1, -1))[0]


def check_config_parameters(config: dict[str, Any], policy: Policy, rebuilt: str) -> Policy:
    """Return ``policy`` if its size matches the ``num_parameters`` its config recorded."""
    expected = config.get("num_parameters")
    if expected is not None and int(expected) != policy.num_parameters:
        raise ValueError(f"policy config says {expected} parameters but {rebuilt} has {policy.num_parameters}")
    return policy


def _shapes_text(shapes: dict[str, tuple[int, ...]]) -> str:
    return "{" + ", ".join(f"{k}: {tuple(v)}" for k, v in shapes.items()) + "}"


_POLICY_TYPES: dict[str, Callable[..., Policy]] = {}


def register_policy(type_name: str, from_config: Callable[[dict[str, Any]], Policy]) -> None:
    """Make ``policy_from_config`` rebuild configs whose ``"type"`` is ``type_name``."""
    _POLICY_TYPES[type_name] = from_config


# Policy types defined in optional modules: imported (so that they register) the first
# time a config of theirs is read, e.g. by ``pytorch-es eval`` on a Keras run directory.
_POLICY_MODULES = {"keras": "pytorch_es.keras.policy"}


def policy_from_config(config: dict[str, Any]) -> Policy:
    """Rebuild a policy from its ``config()`` (e.g. read from ``policy.json``)."""
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"a policy config must be a dict with a 'type', got {config!r}")
    module = _POLICY_MODULES.get(config["type"])
    if module is not None and config["type"] not in _POLICY_TYPES:
        importlib.import_module(module)  # registers the type (or explains what is missing)
    try:
        build = _POLICY_TYPES[config["type"]]
    except KeyError:
        raise ValueError(
            f"unknown policy type {config['type']!r}; known: {sorted(_POLICY_TYPES)}"
        ) from None
    return build(config)


# ---- MLP ---------------------------------------------------------------------------------


# Below this many multiply-adds per member, ``torch.bmm`` on CPU falls back to a slow
# scalar kernel (4 -> 64 for 256 members: about 480 us); smaller layers are one
# ``numpy.einsum`` over the whole population instead (the same layer: about 23 us).
_BMM_MIN_MACS = 400


def _layer_mode(fan_in: int, fan_out: int) -> str:
    if fan_in * fan_out >= _BMM_MIN_MACS:
        return "bmm"  # x (n, 1, in) @ W (n, in, out)
    return "sum_in" if fan_out > fan_in else "sum_last"


def _is_binary(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Discrete) and int(space.n) == 2


class _BoundMLP(BoundPolicy):
    """Per-member weights, laid out once per generation in the order each layer reads them:

    * ``bmm``: ``W (n, in, out)``, ``torch.baddbmm``;
    * ``sum_in`` (``out > in``): ``W (n, in, out)``, ``y[n, o] = sum_i x[n, i] W[n, i, o] + b[n, o]``
      as one ``numpy.einsum`` whose innermost loop runs over ``o`` and accumulates the
      inputs in order, element by element;
    * ``sum_last``: ``W^T (n, out, in)``, the same sum as ``numpy.einsum`` row-wise dot
      products over contiguous rows of ``in`` values;
    * ``diff`` (the output layer of a ``Discrete(2)`` head): ``argmax(y_0, y_1)`` is
      ``y_1 > y_0``, i.e. ``x . (w_1 - w_0) > b_0 - b_1``, so only the difference of the two
      weight columns is kept and read (half the work; ties pick 0, like ``argmax``), as one
      row-wise ``numpy.einsum`` dot product.

    At these sizes the cost is mostly per call, so :meth:`_compile` turns the layers into
    a short list of closures over numpy arrays (a numpy call costs about a third of a
    torch call, and torch's dispatch runs cold between them), with torch for ``bmm``,
    the activations other than relu/tanh/identity, and the argmax (n > 2) and Box heads.
    Every operation is row-wise, so a member's actions do not depend on the other rows;
    ``run_episode`` and the rollouts use this same code. The buffers make a bound policy
    single-threaded (each evaluation binds its own).
    """

    def __init__(self, policy: MLPPolicy, members: torch.Tensor) -> None:
        super().__init__(policy, members)
        n = members.shape[0]
        self.modes: list[str] = list(policy._modes)
        self.weights: list[Any] = []
        self.biases: list[Any] = []
        last = len(policy._slices) - 1
        for k, ((w0, w1, b1), (fan_in, fan_out)) in enumerate(zip(policy._slices, policy._layer_dims, strict=True)):
            weight = members[:, w0:w1].reshape(n, fan_in, fan_out)
            bias = members[:, w1:b1]
            mode = self.modes[k]
            if k == last and policy._binary_head:
                self.modes[k] = "diff"
                self.weights.append(torch.sub(weight[:, :, 1], weight[:, :, 0]).numpy())
                self.biases.append(torch.sub(bias[:, 0], bias[:, 1]).numpy())
            elif mode == "bmm":
                self.weights.append(weight.contiguous())
                self.biases.append(bias.reshape(n, 1, fan_out).contiguous())
            else:
                self.weights.append((weight if mode == "sum_in" else weight.transpose(1, 2)).contiguous().numpy())
                self.biases.append(bias.contiguous().numpy())
        self.activation_name = policy.activation
        self.head = policy._head.forward  # no nn.Module call overhead on every env step
        self.start = int(policy.action_space.start) if policy._binary_head else 0
        self._forward = self._compile()

    def _compile(self) -> Callable[[np.ndarray], np.ndarray | torch.Tensor]:
        n = len(self)
        steps: list[Callable[[Any], Any]] = []
        last = len(self.modes) - 1
        for k, (mode, weight, bias) in enumerate(zip(self.modes, self.weights, self.biases, strict=True)):
            width = 0 if mode == "diff" else int(bias.shape[-1])
            # Torch runs a contiguous elementwise op in 16-value vector chunks and the rest in
            # scalar code, which may round differently (sigmoid, gelu, ...): its activations
            # run on rows padded to a multiple of 32 values, so which path a value takes
            # depends on its column only, never on the number of rows.
            padded = width if k == last or self.activation_name in _NUMPY_ACTIVATIONS else -(-width // 32) * 32
            out = np.zeros((n, padded), np.float32)[:, :width]
            steps.append(_LAYERS[mode](weight, bias, out, self.start))
            if k < last:
                steps.append(_activation_step(self.activation_name, out))
        if self.modes[-1] != "diff":
            head = self.head
            steps.append(lambda y: head(y if isinstance(y, torch.Tensor) else torch.from_numpy(y)))

        def forward(x: np.ndarray) -> np.ndarray | torch.Tensor:
            for step in steps:
                x = step(x)
            return x

        return forward

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.detach().reshape(obs.shape[0], -1)
        if x.dtype != torch.float32:
            x = x.to(torch.float32)
        actions = self._forward(x.numpy())
        return actions if isinstance(actions, torch.Tensor) else torch.from_numpy(actions)

    def call_numpy(self, x: np.ndarray) -> np.ndarray | torch.Tensor:
        """:meth:`__call__` on a float32 ``(n, obs_dim)`` array: int64 actions as an array
        for a ``Discrete(2)`` head, else the head's tensor. The rollout calls this directly."""
        return self._forward(x)

    def select(self, rows: torch.Tensor) -> BoundPolicy:
        other = object.__new__(_BoundMLP)
        other.__dict__.update(self.__dict__)
        other.members = None
        rows_np = rows.numpy()

        def take(value: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
            if isinstance(value, torch.Tensor):
                return value.index_select(0, rows)
            return value.take(rows_np, axis=0)

        other.weights = [take(w) for w in self.weights]
        other.biases = [take(b) for b in self.biases]
        other._forward = other._compile()
        return other

    def __len__(self) -> int:
        return len(self.biases[0])


def _sum_in_layer(weight: np.ndarray, bias: np.ndarray, out: np.ndarray, _: int) -> Callable:
    def sum_in(x: np.ndarray) -> np.ndarray:
        y = np.einsum("ni,nio->no", x, weight, out=out)
        y += bias
        return y

    return sum_in


def _bmm_layer(weight: torch.Tensor, bias: torch.Tensor, out: np.ndarray, _: int) -> Callable:
    return lambda x: torch.baddbmm(bias, torch.from_numpy(x).unsqueeze(1), weight).squeeze(1).numpy()


def _sum_last_layer(weight: np.ndarray, bias: np.ndarray, out: np.ndarray, _: int) -> Callable:
    def sum_last(x: np.ndarray) -> np.ndarray:
        if not x.flags.c_contiguous:  # the same einsum kernel for every row layout
            x = np.ascontiguousarray(x)
        y = np.einsum("ni,noi->no", x, weight, out=out)
        y += bias
        return y

    return sum_last


def _diff_layer(weight: np.ndarray, threshold: np.ndarray, out: np.ndarray, start: int) -> Callable:
    def diff(x: np.ndarray) -> np.ndarray:
        if not x.flags.c_contiguous:  # the same einsum kernel for every row layout
            x = np.ascontiguousarray(x)
        actions = np.greater(np.einsum("ij,ij->i", x, weight), threshold).astype(np.int64)
        if start:
            actions += start
        return actions

    return diff


_LAYERS: dict[str, Callable[[Any, Any, np.ndarray, int], Callable]] = {
    "bmm": _bmm_layer,
    "sum_in": _sum_in_layer,
    "sum_last": _sum_last_layer,
    "diff": _diff_layer,
}


_ZERO = np.float32(0.0)


def _relu_inplace(x: np.ndarray) -> np.ndarray:
    # In the rollout loop about 8 us per step cheaper than torch.relu_ on the same memory
    # (256 x 64 values; torch is faster alone, but its dispatch runs cold between numpy calls)
    return np.maximum(x, _ZERO, out=x)


def _tanh_inplace(x: np.ndarray) -> np.ndarray:
    # numpy's float32 tanh: at most 1.4 ulp from the float64 tanh (measured on 12M values
    # from 1e-4 to 10; torch.tanh, MKL: 0.5 ulp), the same result for an element wherever
    # it sits in the array, and in the rollout loop about 50 us per step cheaper than
    # torch.tanh for 256 x 64 values.
    return np.tanh(x, out=x)


# Activations of :class:`_BoundMLP` applied in place on arrays; others use ACTIVATIONS.
_NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": _relu_inplace,
    "tanh": _tanh_inplace,
    "identity": lambda x: x,
}


def _activation_step(name: str, padded_out: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    if name in _NUMPY_ACTIVATIONS:
        return _NUMPY_ACTIVATIONS[name]
    activation = ACTIVATIONS[name]

    def torch_activation(x: np.ndarray) -> np.ndarray:
        if x is not padded_out:
            np.copyto(padded_out, x)
        return activation(torch.from_numpy(padded_out)).numpy()

    return torch_activation


class ActionHead(torch.nn.Module):
    """Policy outputs -> env actions, the last step of every forward pass.

    ``Discrete(n, start)``: ``argmax(y) + start``. ``Box`` with ``action_mode="squash"``:
    ``middle + tanh(y) * half`` on finite bounds (``middle = (low + high) / 2``,
    ``half = (high - low) / 2``), the identity on unbounded dimensions; ``"clip"``:
    ``clamp(y, low, high)``. Outputs ``(n, out)`` become ``(n,)`` or ``(n, *shape)``.
    """

    def __init__(self, action_space: spaces.Space, action_mode: str = "squash") -> None:
        super().__init__()
        if isinstance(action_space, spaces.Discrete):
            self.kind, self.start, self.shape = "argmax", int(action_space.start), ()
            return
        self.start, self.shape = 0, tuple(action_space.shape)
        low = torch.as_tensor(np.asarray(action_space.low, np.float64).ravel(), dtype=torch.float32)
        high = torch.as_tensor(np.asarray(action_space.high, np.float64).ravel(), dtype=torch.float32)
        finite = torch.isfinite(low) & torch.isfinite(high)
        if action_mode == "clip":
            big = torch.finfo(torch.float32).max
            self.kind = "clip"
            self.register_buffer("low", torch.where(torch.isfinite(low), low, torch.full_like(low, -big)))
            self.register_buffer("high", torch.where(torch.isfinite(high), high, torch.full_like(high, big)))
            return
        self.kind = "squash" if bool(finite.all()) else "squash_partial"
        half = torch.where(finite, (high - low) / 2, torch.ones_like(low))
        self.register_buffer("half_width", half)
        self.register_buffer("midpoint", torch.where(finite, low + half, torch.zeros_like(low)))
        self.register_buffer("finite_mask", finite)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "argmax":
            actions = y.argmax(-1)
            return actions if self.start == 0 else actions.add_(self.start)
        if self.kind == "clip":
            return torch.maximum(torch.minimum(y, self.high), self.low).reshape(-1, *self.shape)
        squashed = torch.addcmul(self.midpoint, torch.tanh(y), self.half_width)
        if self.kind == "squash_partial":
            squashed = torch.where(self.finite_mask, squashed, y)
        return squashed.reshape(-1, *self.shape)

    def extra_repr(self) -> str:
        return f"{self.kind}" + (f", start={self.start}" if self.start else "")


class MLPPolicy(Policy):
    """A multilayer perceptron ``obs -> hidden... -> action``, weights stored as ``x @ W + b``.

    Args:
        observation_space: a ``Box`` (flattened to ``obs_dim`` inputs).
        action_space: ``Discrete(n)`` (``n`` logits, argmax) or ``Box`` (one output per
            dimension, squashed or clipped to the bounds).
        hidden: hidden layer sizes, e.g. ``(64,)`` or ``(64, 64)``; ``()`` is linear.
        activation: one of :data:`ACTIVATIONS`.
        action_mode: ``"squash"`` (tanh to the bounds) or ``"clip"`` for Box actions.
        init_scale: the output layer's initial weights are scaled by this (small
            outputs make the initial policy near-uniform / near the middle of the bounds).

    Flat layout: for each layer ``W`` (``in x out``, row-major) then ``b`` (``out``).
    """

    type_name = "mlp"

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Space,
        hidden: Sequence[int] = (64,),
        activation: str = "tanh",
        action_mode: str = "squash",
        init_scale: float = 0.1,
    ) -> None:
        check_spaces(observation_space, action_space, "the policy")
        if isinstance(hidden, int):
            hidden = (hidden,)
        hidden = tuple(hidden)
        if any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
            raise ValueError(f"hidden must be a sequence of positive ints, got {hidden!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if action_mode not in ("squash", "clip"):
            raise ValueError(f"action_mode must be 'squash' or 'clip', got {action_mode!r}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.action_mode = action_mode
        self.init_scale = float(init_scale)
        discrete = isinstance(action_space, spaces.Discrete)
        out = int(action_space.n) if discrete else int(np.prod(action_space.shape))
        sizes = (self.obs_dim, *self.hidden, out)
        self._layer_dims = list(itertools.pairwise(sizes))
        self._slices: list[tuple[int, int, int]] = []
        offset = 0
        for fan_in, fan_out in self._layer_dims:
            w_end = offset + fan_in * fan_out
            self._slices.append((offset, w_end, w_end + fan_out))
            offset = w_end + fan_out
        self._num_parameters = offset
        self._modes = [_layer_mode(fan_in, fan_out) for fan_in, fan_out in self._layer_dims]
        self._binary_head = _is_binary(action_space)
        self._head = self._make_head()

    def _make_head(self) -> ActionHead:
        return ActionHead(self.action_space, self.action_mode)

    @property
    def num_parameters(self) -> int:
        return self._num_parameters

    def describe(self) -> str:
        arch = "-".join(str(s) for s in (self.obs_dim, *self.hidden, self._layer_dims[-1][1]))
        return f"MLP {arch} ({self.activation}, {self.num_parameters} parameters)"

    def bind(self, members: torch.Tensor) -> BoundPolicy:
        return _BoundMLP(self, self.check_members(members))

    def forward(self, members: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Actions of member ``i`` for observation ``i``: ``(n, P), (n, obs_dim) -> (n, ...)``."""
        members = self.check_members(members)
        if obs.shape[0] != members.shape[0]:
            raise ValueError(f"{members.shape[0]} members but {obs.shape[0]} observations")
        return _BoundMLP(self, members)(obs)

    def initial_parameters(self, seed: int = 0) -> torch.Tensor:
        """PyTorch ``nn.Linear`` initialisation (``U(-1/sqrt(in), 1/sqrt(in))`` for weights
        and biases), output layer scaled by ``init_scale``."""
        generator = torch.Generator().manual_seed(int(seed))
        vector = torch.empty(self.num_parameters)
        last = len(self._slices) - 1
        for k, ((w0, _w1, b1), (fan_in, _)) in enumerate(zip(self._slices, self._layer_dims, strict=True)):
            bound = 1.0 / math.sqrt(fan_in)
            vector[w0:b1].uniform_(-bound, bound, generator=generator)
            if k == last:
                vector[w0:b1].mul_(self.init_scale)
        return vector

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for k, (fan_in, fan_out) in enumerate(self._layer_dims):
            shapes[f"layers.{k}.weight"] = (fan_in, fan_out)
            shapes[f"layers.{k}.bias"] = (fan_out,)
        return shapes

    def named_parameters(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        vector = self.check_vector(vector)
        out: dict[str, torch.Tensor] = {}
        for k, ((w0, w1, b1), dims) in enumerate(zip(self._slices, self._layer_dims, strict=True)):
            out[f"layers.{k}.weight"] = vector[w0:w1].reshape(dims).clone()
            out[f"layers.{k}.bias"] = vector[w1:b1].clone()
        return out

    def to_module(
        self, vector: torch.Tensor, normalizer: ObservationNormalizer | None = None, *, actions: bool = False
    ) -> torch.nn.Sequential:
        """An equivalent ``nn.Sequential`` of ``nn.Linear`` layers, for export.

        With ``normalizer`` (the run's observation statistics) it starts with a
        :class:`~pytorch_es.rl.normalization.NormalizeObservation`, so it takes raw env
        observations; without one it expects what the policy saw. It returns the raw
        outputs (logits / pre-squash values), or with ``actions=True`` the env actions
        (an :class:`ActionHead` at the end).
        """
        named = self.named_parameters(vector)
        layers: list[torch.nn.Module] = [] if normalizer is None else [normalizer.to_module()]
        activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid,
                      "elu": torch.nn.ELU, "selu": torch.nn.SELU, "gelu": torch.nn.GELU,
                      "silu": torch.nn.SiLU, "identity": torch.nn.Identity}[self.activation]
        for k, (fan_in, fan_out) in enumerate(self._layer_dims):
            linear = torch.nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                linear.weight.copy_(named[f"layers.{k}.weight"].T)
                linear.bias.copy_(named[f"layers.{k}.bias"])
            layers.append(linear)
            if k < len(self._layer_dims) - 1:
                layers.append(activation())
        if actions:
            layers.append(self._make_head())
        return torch.nn.Sequential(*layers)

    def config(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "observation_space": space_to_config(self.observation_space),
            "action_space": space_to_config(self.action_space),
            "hidden": list(self.hidden),
            "activation": self.activation,
            "action_mode": self.action_mode,
            "init_scale": self.init_scale,
            "num_parameters": self.num_parameters,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MLPPolicy:
        try:
            policy = cls(
                space_from_config(config["observation_space"]),
                space_from_config(config["action_space"]),
                hidden=tuple(config.get("hidden", (64,))),
                activation=config.get("activation", "tanh"),
                action_mode=config.get("action_mode", "squash"),
                init_scale=config.get("init_scale", 0.1),
            )
        except KeyError as error:
            raise ValueError(f"policy config is missing {error}") from None
        return check_config_parameters(config, policy, "its architecture")

    def __repr__(self) -> str:
        return f"MLPPolicy({self.describe()}, action_space={self.action_space})"


register_policy("mlp", MLPPolicy.from_config)


def make_policy(
    spec: Policy | dict[str, Any] | Sequence[int] | None,
    observation_space: spaces.Box,
    action_space: spaces.Space,
) -> Policy:
    """A policy from a spec: a :class:`Policy` (checked against the spaces), ``None`` (the
    default MLP), a sequence of hidden sizes, or MLP keyword arguments
    ``{"hidden": (64, 64), "activation": "tanh", "action_mode": "squash"}``."""
    if isinstance(spec, Policy):
        if spec.observation_space.shape != observation_space.shape:
            raise ValueError(
                f"the policy expects observations of shape {spec.observation_space.shape}, "
                f"the env gives {observation_space.shape}"
            )
        if spec.action_space != action_space and not (
            isinstance(spec.action_space, spaces.Box) and isinstance(action_space, spaces.Box)
            and spec.action_space.shape == action_space.shape
        ):
            raise ValueError(f"the policy acts in {spec.action_space}, the env expects {action_space}")
        return spec
    if spec is None:
        return MLPPolicy(observation_space, action_space)
    if isinstance(spec, dict):
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        if spec.get("type", "mlp") != "mlp":
            raise ValueError(f"a dict policy spec builds an MLP; got type {spec['type']!r}")
        try:
            return MLPPolicy(observation_space, action_space, **kwargs)
        except TypeError as error:
            raise ValueError(f"invalid MLP policy spec {spec!r}: {error}") from None
    if isinstance(spec, (list, tuple)):
        return MLPPolicy(observation_space, action_space, hidden=tuple(spec))
    raise TypeError(
        f"policy must be a Policy, a dict of MLP options, a list of hidden sizes or None, "
        f"got {type(spec).__name__}"
    )
