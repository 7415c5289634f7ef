"""Flat parameter vectors: a model or a list of tensors <-> one 1-D tensor.

Evolution strategies search over a single vector ``theta`` in R^d. These helpers
turn the parameters of an ``nn.Module`` (or any list of floating-point tensors)
into that vector and write a vector back *in place*, so a model is never
deep-copied per evaluation.

Other model types plug in with :func:`register_parameter_source`: a function that
returns an object's parameters as torch tensors (the Keras adapter registers Keras
models and variables this way). A package can also be *declared* in
:mod:`pytorch_es.plugins` for the types it defines; it is then imported the first time
one of its objects is met, so the user need not import it first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from pytorch_es import plugins

ParametersLike = nn.Module | Iterable[torch.Tensor]

#: ``source(obj) -> iterable of parameters`` (torch tensors, or objects that are
#: themselves registered sources, e.g. a model's variables).
ParameterSource = Callable[[Any], Iterable[Any]]

_SOURCES: dict[type, ParameterSource] = {}
# per concrete type: (plugins.generation() when looked up, the source or None); cleared on registration
_FOUND: dict[type, tuple[int, ParameterSource | None]] = {}


def register_parameter_source(cls: type, source: ParameterSource) -> None:
    """Make instances of ``cls`` (and its subclasses) usable wherever parameters are taken.

    ``source(obj)`` returns the parameters of ``obj`` in the order of the flat vector:
    torch tensors that :func:`write_back` updates in place, or objects whose own type is
    registered (each is replaced by its tensors). It may raise ``TypeError`` or
    ``ValueError`` (e.g. an unbuilt model); the message is prefixed with the argument's
    name. A registered type is looked up before the ``nn.Module`` rule, so an
    ``nn.Module`` subclass can choose its parameters (e.g. trainable ones only, in its
    own order). Registering ``cls`` again replaces its source.
    """
    if not isinstance(cls, type):
        raise TypeError(f"cls must be a class, got {type(cls).__name__}")
    if not callable(source):
        raise TypeError(f"source must be callable, got {type(source).__name__}")
    _SOURCES[cls] = source
    _FOUND.clear()


def parameter_source(obj: object) -> ParameterSource | None:
    """The registered source for ``obj``'s type (nearest class in its MRO), or ``None``.

    A type from a package declared in ``pytorch_es.plugins`` (``"parameter_sources"``,
    keyed by the package's top-level name) imports that package first.
    """
    kind = type(obj)
    cached = _FOUND.get(kind)
    if cached is not None and (cached[1] is not None or cached[0] == plugins.generation()):
        return cached[1]
    found = _lookup(kind)
    if found is None and any(plugins.load("parameter_sources", c.__module__.partition(".")[0]) for c in kind.__mro__):
        found = _lookup(kind)
    _FOUND[kind] = (plugins.generation(), found)
    return found


def _lookup(kind: type) -> ParameterSource | None:
    for cls in kind.__mro__:
        if cls in _SOURCES:
            return _SOURCES[cls]
    return None


def _from_source(source: ParameterSource, obj: object, name: str) -> list[Any]:
    try:
        return list(source(obj))
    except (TypeError, ValueError) as error:
        raise (TypeError if isinstance(error, TypeError) else ValueError)(f"{name}: {error}") from None


def as_parameter_list(parameters: ParametersLike, name: str = "parameters") -> list[torch.Tensor]:
    """Return ``parameters`` as a validated list of floating-point tensors.

    Accepts a tensor, an object of a registered type (:func:`register_parameter_source`;
    e.g. a Keras 3 model on the torch backend: its ``trainable_weights``, in Keras order),
    an ``nn.Module`` (its ``parameters()``) or an iterable of tensors (an item of a
    registered type, e.g. a Keras variable, stands for its tensors). Raises
    ``TypeError``/``ValueError`` naming ``name`` for an empty list, a non-tensor, an
    integer or complex tensor, or tensors on different devices.
    """
    if isinstance(parameters, torch.Tensor):
        tensors = [parameters]
    elif (source := parameter_source(parameters)) is not None:
        tensors = _from_source(source, parameters, name)
    elif isinstance(parameters, nn.Module):
        tensors = list(parameters.parameters())
    else:
        try:
            tensors = list(parameters)
        except TypeError:
            raise TypeError(
                f"{name} must be an nn.Module or a list of tensors, got {type(parameters).__name__}"
            ) from None
    tensors = _expand_sources(tensors, name)
    if not tensors:
        raise ValueError(f"{name} is empty: expected at least one floating-point tensor")
    for index, tensor in enumerate(tensors):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"{name}[{index}] must be a torch.Tensor, got {type(tensor).__name__}"
            )
        if not tensor.is_floating_point():
            raise TypeError(
                f"{name}[{index}] has dtype {tensor.dtype}; evolution strategies need "
                "floating-point tensors (e.g. torch.float32)"
            )
    devices = {tensor.device for tensor in tensors}
    if len(devices) > 1:
        raise ValueError(f"{name} are on several devices {sorted(map(str, devices))}; expected one")
    return tensors


def _expand_sources(items: list[Any], name: str, depth: int = 0) -> list[Any]:
    """``items`` with each object of a registered type replaced by its tensors."""
    if all(isinstance(item, torch.Tensor) for item in items):
        return items
    expanded: list[Any] = []
    for index, item in enumerate(items):
        source = None if isinstance(item, torch.Tensor) else parameter_source(item)
        if source is None or depth > 8:  # not a source: checked (and named) by the caller
            expanded.append(item)
        else:
            expanded.extend(_expand_sources(_from_source(source, item, f"{name}[{index}]"), name, depth + 1))
    return expanded


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
