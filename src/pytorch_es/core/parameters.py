"""Flat parameter vectors: a model or a list of tensors <-> one 1-D tensor.

Evolution strategies search over a single vector ``theta`` in R^d. These helpers
turn the parameters of an ``nn.Module`` (or any list of floating-point tensors)
into that vector and write a vector back *in place*, so a model is never
deep-copied per evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

ParametersLike = nn.Module | Iterable[torch.Tensor]


def as_parameter_list(parameters: ParametersLike, name: str = "parameters") -> list[torch.Tensor]:
    """Return ``parameters`` as a validated list of floating-point tensors.

    Accepts an ``nn.Module`` (its ``parameters()``), a Keras 3 model on the torch
    backend (its ``trainable_weights``, in Keras order) or an iterable of tensors. Raises
    ``TypeError``/``ValueError`` naming ``name`` for an empty list, a non-tensor, an
    integer or complex tensor, or tensors on different devices.
    """
    if _is_keras_layer(parameters):
        # A Keras 3 model is an nn.Module on the torch backend, but its parameters()
        # come sorted by name and include non-trainable state (BatchNorm statistics).
        tensors = list(parameters.trainable_weights)
        if not tensors:
            raise ValueError(
                f"{name}: the Keras model has no trainable weights (build it first, e.g. with keras.Input)"
            )
    elif isinstance(parameters, nn.Module):
        tensors = list(parameters.parameters())
    elif isinstance(parameters, torch.Tensor):
        tensors = [parameters]
    else:
        try:
            tensors = list(parameters)
        except TypeError:
            raise TypeError(
                f"{name} must be an nn.Module or a list of tensors, got {type(parameters).__name__}"
            ) from None
    if not tensors:
        raise ValueError(f"{name} is empty: expected at least one floating-point tensor")
    for index, tensor in enumerate(tensors):
        tensor = _unwrap(tensor)
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"{name}[{index}] must be a torch.Tensor, got {type(tensor).__name__}"
            )
        if not tensor.is_floating_point():
            raise TypeError(
                f"{name}[{index}] has dtype {tensor.dtype}; evolution strategies need "
                "floating-point tensors (e.g. torch.float32)"
            )
        tensors[index] = tensor
    devices = {tensor.device for tensor in tensors}
    if len(devices) > 1:
        raise ValueError(f"{name} are on several devices {sorted(map(str, devices))}; expected one")
    return tensors


def _is_keras_layer(obj: object) -> bool:
    """Whether ``obj`` is a Keras 3 layer or model (checked without importing keras)."""
    return hasattr(obj, "trainable_weights") and any(
        cls.__module__.split(".")[0] == "keras" for cls in type(obj).__mro__
    )


def _unwrap(tensor: object) -> object:
    """Return the torch tensor behind a Keras variable (torch backend), else ``tensor``."""
    value = getattr(tensor, "value", None)
    if not isinstance(tensor, torch.Tensor) and isinstance(value, torch.Tensor):
        return value
    return tensor


def flat_dtype(tensors: Sequence[torch.Tensor]) -> torch.dtype:
    """The dtype of the flat vector: the promotion of all parameter dtypes."""
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def flatten(parameters: ParametersLike) -> torch.Tensor:
    """Concatenate parameters into a new detached 1-D tensor (``parameters_to_vector``)."""
    tensors = as_parameter_list(parameters)
    dtype = flat_dtype(tensors)
    with torch.no_grad():
        return nn.utils.parameters_to_vector([t.detach().to(dtype) for t in tensors]).clone()


def unflatten(vector: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split ``vector`` into views shaped like ``like`` (no copy when dtypes match)."""
    sizes = [t.numel() for t in like]
    if vector.numel() != sum(sizes):
        raise ValueError(
            f"vector has {vector.numel()} elements but the parameters have {sum(sizes)}"
        )
    return [
        chunk.view_as(t) if chunk.dtype == t.dtype else chunk.view(t.shape).to(t.dtype)
        for chunk, t in zip(torch.split(vector, sizes), like, strict=True)
    ]


def write_back(vector: torch.Tensor, parameters: ParametersLike) -> None:
    """Copy ``vector`` into ``parameters`` in place.

    ``nn.utils.vector_to_parameters`` rebinds each ``param.data`` to a view of the
    vector, which would silently alias the model with the strategy's buffer; an
    in-place ``copy_`` keeps the model's own storage, dtype and device.
    """
    parameters = as_parameter_list(parameters)
    with torch.no_grad():
        for param, chunk in zip(parameters, unflatten(vector.to(parameters[0].device), parameters)):
            param.copy_(chunk)


def num_parameters(parameters: Sequence[torch.Tensor]) -> int:
    """Total number of scalars in ``parameters``."""
    return sum(t.numel() for t in parameters)
