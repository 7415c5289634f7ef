"""Keras 3 models trained by pytorch-es (needs the ``keras`` extra and ``KERAS_BACKEND=torch``).

On the torch backend every Keras variable holds a ``torch.nn.Parameter``, so a Keras
model's trainable weights are torch tensors that the strategies can flatten, perturb
and write back. This package adds what Keras needs on top:

- :func:`model_to_vector` / :func:`vector_to_model`: trainable weights <-> one flat
  vector, in Keras order (``model.trainable_weights``).
- :class:`KerasForward`: the model as a pure function of ``(parameters, inputs)``, with
  a batched forward over a population matrix. A ``Sequential`` of ``Dense`` layers is
  compiled to one ``torch.baddbmm`` per layer; any other model runs through
  ``model.stateless_call`` (vectorised with ``torch.func.vmap`` where it can be).
- :func:`keras_policy`: a Keras model as the policy of the Gymnasium problem
  (``pytorch_es.rl``).

Importing this package registers Keras layers, models and variables as parameter sources
(:func:`pytorch_es.core.parameters.register_parameter_source`: ``flatten``, ``write_back``,
the strategies and ``EvolutionModule`` take a Keras model, in Keras order) and the
``"keras"`` policy kind (:func:`pytorch_es.rl.register_policy`). ``import pytorch_es``
declares it in :mod:`pytorch_es.plugins`, so it is imported the first time a Keras object
or a Keras ``policy.json`` is met; the layers below never name it.

Importing this package sets ``KERAS_BACKEND=torch`` when keras is not imported yet and
the variable is unset; any other backend is a ``RuntimeError``.
"""

from __future__ import annotations

import importlib
import os
import sys

REQUIRED_BACKEND = "torch"


def _import_keras():  # returns the keras module
    """Import the real (top-level) keras with the torch backend, or raise a clear error."""
    if "keras" not in sys.modules:
        requested = os.environ.setdefault("KERAS_BACKEND", REQUIRED_BACKEND)
        if requested != REQUIRED_BACKEND:  # refuse before keras locks itself to that backend
            raise RuntimeError(
                f"pytorch_es.keras needs the Keras torch backend, but KERAS_BACKEND={requested!r}. "
                "Set KERAS_BACKEND=torch (or unset it) before anything imports keras."
            )
    try:
        keras = importlib.import_module("keras")  # absolute: the real keras, not this package
    except ImportError as error:
        raise ImportError(
            "pytorch_es.keras needs Keras 3 with the torch backend: pip install 'pytorch-es[keras]' "
            f"and set KERAS_BACKEND=torch ({error})"
        ) from error
    if not hasattr(keras, "backend"):
        raise ImportError(
            f"the module 'keras' imported from {getattr(keras, '__file__', '?')!r} is not Keras 3 "
            "(does a local file or folder named keras shadow it?)"
        )
    version = getattr(keras, "__version__", "0")
    if int(version.split(".")[0]) < 3:
        raise ImportError(f"pytorch_es.keras needs Keras >= 3 (multi-backend); found keras {version}")
    backend = keras.backend.backend()
    if backend != REQUIRED_BACKEND:
        raise RuntimeError(
            f"pytorch_es.keras needs the Keras torch backend, but keras {version} was loaded with "
            f"backend {backend!r} (KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r}). Set "
            "KERAS_BACKEND=torch in the environment before anything imports keras."
        )
    return keras


keras = _import_keras()

from pytorch_es.keras.adapter import (  # noqa: E402 - after the backend check
    ACTIVATIONS,
    BoundForward,
    KerasForward,
    NotConvertibleError,
    model_to_vector,
    trainable_tensors,
    vector_to_model,
)

try:  # the Gymnasium policy needs the `gym` extra; the rest of this package does not
    from pytorch_es.keras.policy import KerasPolicy, keras_policy
except ModuleNotFoundError as error:  # pragma: no cover - gymnasium is installed in CI
    if error.name != "gymnasium":
        raise
    _GYM_ERROR = error

    def __getattr__(name: str) -> object:
        if name in ("KerasPolicy", "keras_policy"):
            raise ImportError(
                f"pytorch_es.keras.{name} needs Gymnasium: pip install 'pytorch-es[gym,keras]'"
            ) from _GYM_ERROR
        raise AttributeError(f"module 'pytorch_es.keras' has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS",
    "BoundForward",
    "KerasForward",
    "KerasPolicy",
    "NotConvertibleError",
    "keras_policy",
    "model_to_vector",
    "trainable_tensors",
    "vector_to_model",
]
