"""Registered model builders (mlp, cnn, resnet, …); ``build_model(spec, input_shape, num_classes)``."""

from .._base import Config
from .base import ChildnetModel, build_model, model_spec

#: ``Config`` is the base of a model's options (frozen, unknown fields refused): see docs/own-model.md.
__all__ = ["ChildnetModel", "Config", "build_model", "model_spec"]
