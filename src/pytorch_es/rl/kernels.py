"""The MLP's batched forward: one generation's weights laid out per layer, and the
numpy / torch kernels that step a whole population at once.

For member ``i`` (row ``i`` of the ``(n, P)`` member matrix) and its observation
``x_0[i]``::

    x_{k+1}[i] = act(x_k[i] @ W_k[i] + b_k[i]),   W_k = members[:, a:b].view(n, in, out)

``torch.baddbmm`` for layers with ``in * out >= 400``; below that CPU ``bmm`` falls back
to a slow scalar kernel, so small layers are elementwise passes over the whole
population (see :class:`BoundMLP`). A generation costs a few array operations per step,
not a Python loop over members. :class:`~pytorch_es.rl.mlp.MLPPolicy` binds through
:class:`BoundMLP`; the action head is :class:`~pytorch_es.rl.spaces.ActionHead`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pytorch_es.rl.policy import BoundPolicy

if TYPE_CHECKING:
    from pytorch_es.rl.mlp import MLPPolicy

__all__ = ["ACTIVATIONS", "BoundMLP", "layer_mode"]

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


# Below this many multiply-adds per member, ``torch.bmm`` on CPU falls back to a slow
# scalar kernel (4 -> 64 for 256 members: about 480 us); smaller layers are one
# ``numpy.einsum`` over the whole population instead (the same layer: about 23 us).
_BMM_MIN_MACS = 400


def layer_mode(fan_in: int, fan_out: int) -> str:
    """How :class:`BoundMLP` runs a ``fan_in -> fan_out`` layer: ``"bmm"``, ``"sum_in"`` or ``"sum_last"``."""
    if fan_in * fan_out >= _BMM_MIN_MACS:
        return "bmm"  # x (n, 1, in) @ W (n, in, out)
    return "sum_in" if fan_out > fan_in else "sum_last"


class BoundMLP(BoundPolicy):
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
        other = object.__new__(BoundMLP)
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


# Activations of :class:`BoundMLP` applied in place on arrays; others use ACTIVATIONS.
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

