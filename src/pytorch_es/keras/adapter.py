"""A Keras 3 model (torch backend) as a flat parameter vector and a batched function.

Flat vector. The search space is ``theta = concat(vec(w) for w in model.trainable_weights)``,
in Keras order (kernel, bias per layer), so ``model.get_weights()``-style lists and the
vector line up. Non-trainable state (e.g. BatchNorm statistics) is never perturbed.

Batched forward. ``torch.func.functional_call`` cannot substitute weights in a Keras
model (Keras reads its variables, not the module's parameters), so a population of
``n`` members is evaluated either

- ``"dense"``: a ``keras.Sequential`` of ``Dense``/``Activation`` layers with
  relu/tanh/sigmoid/linear/softmax becomes ``h <- act(baddbmm(b, h, W))`` per layer,
  with ``W`` of shape ``(n, in, out)`` sliced out of the ``(n, d)`` member matrix
  (one batched matrix product per layer for the whole population); or
- ``"stateless"``: any other model runs through Keras's own
  ``model.stateless_call(trainable, non_trainable, x)``, which takes the weights as
  arguments (no write into the variables, safe in threads), vectorised over members
  with ``torch.func.vmap`` and, where vmap cannot trace the model, looped member by
  member (slower, same numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras  # the real, top-level Keras 3 (absolute import; this package is pytorch_es.keras)
import torch

from pytorch_es.core.parameters import as_parameter_list, flatten, register_parameter_source, unflatten

Activation = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


#: Keras activations the ``"dense"`` forward reproduces, with their torch equivalents.
ACTIVATIONS: dict[Callable[..., Any], tuple[str, Activation]] = {
    keras.activations.relu: ("relu", torch.relu),
    keras.activations.tanh: ("tanh", torch.tanh),
    keras.activations.sigmoid: ("sigmoid", torch.sigmoid),
    keras.activations.linear: ("linear", _identity),
    keras.activations.softmax: ("softmax", _softmax),
}

MODES = ("auto", "dense", "stateless")


class NotConvertibleError(ValueError):
    """A Keras model cannot be compiled to the ``"dense"`` batched forward."""


def check_model(model: object, name: str = "model") -> keras.Layer:
    """``model`` must be a built Keras layer or model with trainable weights."""
    if not isinstance(model, keras.Layer):
        raise TypeError(f"{name} must be a Keras 3 model or layer, got {type(model).__name__}")
    if not model.built or not model.trainable_weights:
        raise ValueError(
            f"{name} {model.name!r} has no trainable weights yet: build it first "
            "(start a Sequential with keras.Input(shape), or call model.build(input_shape))"
        )
    return model


def trainable_tensors(model: keras.Layer) -> list[torch.Tensor]:
    """The ``torch.nn.Parameter`` behind each of ``model.trainable_weights``, in Keras order.

    Writing into them in place (``copy_``) changes the model, which is what
    ``EvolutionModule(model.trainable_weights, ...)`` does after each iteration.
    """
    return as_parameter_list(check_model(model).trainable_weights, "model.trainable_weights")


def _layer_parameters(layer: keras.Layer) -> list[keras.Variable]:
    """A Keras layer or model as parameters: its trainable weights, in Keras order (its
    ``nn.Module.parameters()`` on the torch backend come sorted by name and include
    non-trainable state such as BatchNorm statistics)."""
    weights = list(layer.trainable_weights)
    if not weights:
        raise ValueError("the Keras model has no trainable weights (build it first, e.g. with keras.Input)")
    return weights


def _variable_parameters(variable: keras.Variable) -> list[torch.Tensor]:
    """A Keras variable as parameters: the ``torch.nn.Parameter`` it holds (torch backend)."""
    return [variable.value]


# pytorch_es.core takes Keras models and variables wherever it takes parameters
# (flatten, write_back, the strategies' centers, EvolutionModule)
register_parameter_source(keras.Layer, _layer_parameters)
register_parameter_source(keras.Variable, _variable_parameters)


def model_to_vector(model: keras.Layer) -> torch.Tensor:
    """``theta``: the trainable weights concatenated into a new detached 1-D tensor."""
    return flatten(trainable_tensors(model))


def vector_to_model(vector: torch.Tensor | Sequence[torch.Tensor], model: keras.Layer) -> None:
    """Write a flat vector (or a list of tensors shaped like the trainable weights) into
    ``model`` with ``variable.assign`` (Keras's own path; also correct inside a stateless
    scope or with a mixed-precision policy)."""
    variables = list(check_model(model).trainable_weights)
    if isinstance(vector, torch.Tensor) and vector.dim() == 1:
        chunks = unflatten(vector.detach(), [v.value for v in variables])
    else:
        chunks = list(vector)
        if len(chunks) != len(variables):
            raise ValueError(
                f"got {len(chunks)} weight tensors for {len(variables)} trainable weights of {model.name!r}"
            )
    for variable, chunk in zip(variables, chunks, strict=True):
        chunk = torch.as_tensor(chunk).detach()
        if tuple(chunk.shape) != tuple(variable.shape):
            raise ValueError(
                f"weight for {variable.path} has shape {tuple(chunk.shape)}, expected {tuple(variable.shape)}"
            )
        variable.assign(chunk)


@dataclass(frozen=True)
class _Source:
    """Where a Dense weight comes from: a slice of the member vector, or a fixed variable."""

    offset: int | None  # None: not trainable, read ``variable`` (its current value)
    variable: Any

    def batched(self, members: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        n = members.shape[0]
        if self.offset is None:
            value = self.variable.value.detach().to(members.device)
            return value.unsqueeze(0).expand(n, *shape)
        size = 1
        for s in shape:
            size *= s
        return members[:, self.offset : self.offset + size].reshape(n, *shape)


@dataclass(frozen=True)
class _DenseStep:
    kernel: _Source
    bias: _Source | None
    units_in: int
    units_out: int
    dtype: torch.dtype
    activation: str


@dataclass(frozen=True)
class _ActivationStep:
    activation: str


def _torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, keras.backend.standardize_dtype(name))


def dense_plan(model: keras.Layer, offsets: dict[int, int]) -> list[_DenseStep | _ActivationStep]:
    """The ``"dense"`` program of ``model``, or :class:`NotConvertibleError` saying why not.

    ``offsets`` maps ``id(variable)`` to its offset in the flat vector (trainable ones).
    """
    if not isinstance(model, keras.Sequential):
        raise NotConvertibleError(f"{type(model).__name__} is not a keras.Sequential")
    steps: list[_DenseStep | _ActivationStep] = []
    supported = sorted(name for name, _ in ACTIVATIONS.values())
    for layer in model.layers:
        where = f"layer {layer.name!r} ({type(layer).__name__})"
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if type(layer) not in (keras.layers.Dense, keras.layers.Activation):
            raise NotConvertibleError(f"{where} is not Dense or Activation")
        activation = ACTIVATIONS.get(layer.activation)
        if activation is None:
            raise NotConvertibleError(f"{where}: activation {layer.activation!r} is not one of {supported}")
        if type(layer) is keras.layers.Activation:
            steps.append(_ActivationStep(activation[0]))
            continue
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            raise NotConvertibleError(f"{where} uses LoRA or quantization")
        kernel = layer.kernel
        if len(kernel.shape) != 2:
            raise NotConvertibleError(f"{where}: kernel of shape {tuple(kernel.shape)}")
        bias = layer.bias if layer.use_bias else None
        steps.append(
            _DenseStep(
                kernel=_Source(offsets.get(id(kernel)), kernel),
                bias=None if bias is None else _Source(offsets.get(id(bias)), bias),
                units_in=int(kernel.shape[0]),
                units_out=int(kernel.shape[1]),
                dtype=_torch_dtype(layer.compute_dtype),
                activation=activation[0],
            )
        )
    if not any(isinstance(step, _DenseStep) for step in steps):
        raise NotConvertibleError("the model has no Dense layer")
    return steps


_INPLACE: dict[str, Activation] = {
    "relu": torch.relu_,
    "tanh": torch.tanh_,
    "sigmoid": torch.sigmoid_,
    "linear": _identity,
    "softmax": _softmax,
}
_BY_NAME: dict[str, Activation] = {name: fn for name, fn in ACTIVATIONS.values()}


class BoundForward:
    """:class:`KerasForward` with its ``n`` members fixed: ``bound(X) == forward.batched(members, X)``.

    In ``"dense"`` mode the per-member kernels ``(n, in, out)`` and biases ``(n, 1, out)``
    are sliced out once (what a rollout needs: the same members for every step);
    ``select(rows)`` keeps only some members.
    """

    def __init__(self, forward: KerasForward, members: torch.Tensor, logits: bool = False) -> None:
        self.forward = forward
        self.members = members
        self.layers: list[tuple[torch.Tensor | None, torch.Tensor | None, str, torch.dtype | None]] = []
        if forward.plan is None:
            return
        n = members.shape[0]
        for step in forward.plan:
            if isinstance(step, _ActivationStep):
                self.layers.append((None, None, step.activation, None))
                continue
            kernel = step.kernel.batched(members, (step.units_in, step.units_out)).to(step.dtype)
            bias = None
            if step.bias is not None:
                bias = step.bias.batched(members, (step.units_out,)).to(step.dtype).reshape(n, 1, -1)
            self.layers.append((kernel.contiguous(), bias, step.activation, step.dtype))
        if logits and self.layers[-1][2] == "softmax":  # argmax(softmax(y)) == argmax(y)
            kernel, bias, _, dtype = self.layers[-1]
            if kernel is None:
                self.layers.pop()
            else:
                self.layers[-1] = (kernel, bias, "linear", dtype)

    def __len__(self) -> int:
        return self.members.shape[0]

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        n = self.members.shape[0]
        if inputs.shape[0] != n:
            raise ValueError(f"inputs have {inputs.shape[0]} rows on dim 0 but there are {n} members")
        if self.forward.plan is None:
            return self.forward._stateless(self.members, inputs)
        batch_shape = inputs.shape[1:-1]
        h = inputs.reshape(n, -1, inputs.shape[-1])
        for kernel, bias, activation, dtype in self.layers:
            if kernel is None:  # an Activation layer: out of place (h may be the caller's input)
                h = _BY_NAME[activation](h)
                continue
            if h.shape[-1] != kernel.shape[1]:
                raise ValueError(
                    f"inputs have {h.shape[-1]} features, the Dense layer expects {kernel.shape[1]}"
                )
            if h.dtype != dtype:
                h = h.to(dtype)
            h = torch.bmm(h, kernel) if bias is None else torch.baddbmm(bias, h, kernel)
            h = _INPLACE[activation](h)  # h is a fresh tensor here
        return h.reshape(n, *batch_shape, h.shape[-1])

    def select(self, rows: torch.Tensor) -> BoundForward:
        """The same bound forward for members ``rows`` only."""
        other = object.__new__(BoundForward)
        other.forward = self.forward
        other.members = self.members.index_select(0, rows.to(self.members.device))
        other.layers = [
            (
                None if kernel is None else kernel.index_select(0, rows),
                None if bias is None else bias.index_select(0, rows),
                activation,
                dtype,
            )
            for kernel, bias, activation, dtype in self.layers
        ]
        return other


class KerasForward:
    """A Keras model as a pure function ``f(theta, x)`` and its batched form ``F(Theta, X)``.

    Args:
        model: a built Keras 3 model (torch backend). It is never modified.
        mode: ``"auto"`` (default): ``"dense"`` where the model is a Sequential of
            Dense/Activation layers, else ``"stateless"``; ``"dense"``: that or
            :class:`NotConvertibleError`; ``"stateless"``: always ``model.stateless_call``.

    Attributes:
        dim: number of trainable scalars ``d``. mode: the mode in use.
        reason: why ``"auto"`` did not choose ``"dense"`` (``None`` if it did).
    """

    def __init__(self, model: keras.Layer, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.model = check_model(model)
        self.variables = list(model.trainable_weights)
        self.like = trainable_tensors(model)
        offsets, position = {}, 0
        for variable in self.variables:
            offsets[id(variable)] = position
            position += int(variable.value.numel())
        self.dim = position
        self.reason: str | None = None
        self.plan: list[_DenseStep | _ActivationStep] | None = None
        if mode != "stateless":
            try:
                self.plan = dense_plan(model, offsets)
            except NotConvertibleError as error:
                if mode == "dense":
                    raise
                self.reason = str(error)
        self.mode = "dense" if self.plan is not None else "stateless"
        self._vmap_works: bool | None = None

    def __repr__(self) -> str:
        return f"KerasForward({self.model.name!r}, dim={self.dim}, mode={self.mode!r})"

    def initial_vector(self) -> torch.Tensor:
        """The model's current trainable weights as a flat vector (a new tensor)."""
        return flatten(self.like)

    def __call__(self, parameters: torch.Tensor | Sequence[torch.Tensor], inputs: Any) -> torch.Tensor:
        """``f(theta, x)``: the model's output with weights ``parameters`` (a flat vector
        or a list shaped like ``model.trainable_weights``) on a batch ``inputs``."""
        if not isinstance(parameters, torch.Tensor):
            parameters = flatten(list(parameters))
        if parameters.dim() != 1 or parameters.numel() != self.dim:
            raise ValueError(
                f"parameters must be a flat vector of {self.dim} values, got shape {tuple(parameters.shape)}"
            )
        inputs = torch.as_tensor(inputs, device=parameters.device)
        return self.batched(parameters.unsqueeze(0), inputs.unsqueeze(0))[0]

    def check_members(self, members: torch.Tensor) -> torch.Tensor:
        if not isinstance(members, torch.Tensor) or members.dim() != 2 or members.shape[1] != self.dim:
            shape = tuple(members.shape) if isinstance(members, torch.Tensor) else type(members).__name__
            raise ValueError(f"members must have shape (n, {self.dim}), got {shape}")
        return members.detach()

    def bind(self, members: torch.Tensor, *, logits: bool = False) -> BoundForward:
        """Fix the members (``(n, d)``) for many calls on new inputs (e.g. a rollout).

        ``logits=True`` leaves out a final softmax in ``"dense"`` mode (for an argmax:
        the same action, up to exact float ties, for one exp less per step).
        """
        with torch.no_grad():
            return BoundForward(self, self.check_members(members), logits=logits)

    def batched(self, members: torch.Tensor, inputs: Any) -> torch.Tensor:
        """``F(Theta, X)[i] = f(Theta[i], X[i])`` for a ``(n, d)`` member matrix and inputs
        of shape ``(n, ..., features)`` (each member its own batch)."""
        members = self.check_members(members)
        inputs = torch.as_tensor(inputs, device=members.device)
        with torch.no_grad():
            return BoundForward(self, members)(inputs)

    def _split(self, members: torch.Tensor) -> list[torch.Tensor]:
        """Per-variable batched weights ``(n, *shape)`` (views of ``members``)."""
        n = members.shape[0]
        sizes = [t.numel() for t in self.like]
        chunks = torch.split(members, sizes, dim=1)
        return [c.reshape(n, *t.shape).to(t.dtype) for c, t in zip(chunks, self.like, strict=True)]

    def _stateless(self, members: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        non_trainable = [v.value.detach() for v in self.model.non_trainable_variables]

        def one(weights: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            outputs, _ = self.model.stateless_call(list(weights), non_trainable, x)
            return outputs

        weights = self._split(members)
        if self._vmap_works is not False:
            try:
                outputs = torch.func.vmap(one)(tuple(weights), inputs)
                self._vmap_works = True
                return outputs
            except Exception:
                if self._vmap_works:  # it worked before: a real error, not a tracing limit
                    raise
                self._vmap_works = False
        return torch.stack([one([w[i] for w in weights], inputs[i]) for i in range(members.shape[0])])
