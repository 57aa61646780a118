"""The text-classification search space of the Neural AutoML search, and how one child is trained.

After Houlsby, Giurgiu, Jastrzebski, Morrone, de Laroussilhe, Gesmundo, Attariyan, Gelly (2019,
arXiv 1902.00751, Table 5; the space of the same group's T-NAML, Wong et al. 2018, arXiv 1803.02780),
scaled to one CPU core. A flat list of categorical decisions, like the ENAS spaces, so random search,
the ENAS LSTM controller and the task-conditioned controller all run on it unchanged:

=================  =====================================================  ============================
decision           choices (defaults)                                     Houlsby et al. Table 5
=================  =====================================================  ============================
representation     minilm, tfidf_svd, hashed_bow (numeric tasks: raw)     pretrained text-embedding modules
layers             0, 1, 2, 3                                             0-5 hidden layers
width              64, 128, 256                                           64, 128, 256
activation         relu, tanh, silu                                       relu, relu6, elu, selu, swish...
dropout            0, 0.1, 0.3, 0.5                                       0, 0.1, 0.2, 0.3, 0.4, 0.5
batch_norm         no, yes                                                none / batch norm / layer norm
lr                 1e-4, 3e-4, 1e-3, 3e-3, 1e-2                           1e-5 ... 1 (log grid)
weight_decay       0, 1e-4, 1e-3, 1e-2                                    L2 0, 1e-4, 1e-3, 1e-2 ...
epochs             3, 10, 20                                              (fixed step budget)
=================  =====================================================  ============================

Differences (ours): no fine-tuning of the embedding module and no convolution layer (the representation
is frozen and computed once per task, so a child trains in seconds); one width for every hidden layer;
AdamW with decoupled weight decay stands in for Adam + L2; epochs is a decision.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch
from pydantic import Field, field_validator

from ...config import Config
from ...errors import ConfigError
from ...models.text_child import ACTIVATIONS, FeatureMLP, TextChild, representation_dim
from ...tasks.base import Task
from ...train import RNG_LOCK, TrainConfig, evaluate_accuracy, fit
from .spaces import Decision
from .text_features import TaskFeatures, representation_kinds, task_features

__all__ = ["TextSpaceConfig", "TextSpace", "train_text_child", "build_text_child"]


class TextSpaceConfig(Config):
    """The choices of every decision of the text space (a search method's config extends this)."""

    representations: list[str] = Field(["tfidf_svd", "hashed_bow", "minilm"], min_length=1,
                                       description="text representations to choose from (minilm | tfidf_svd | "
                                       "hashed_bow; numeric tasks use raw)")
    max_layers: int = Field(3, ge=0, le=5, description="hidden layers: 0..max_layers")
    widths: list[int] = Field([64, 128, 256], min_length=1, description="width of the hidden layers")
    activations: list[str] = Field(["relu", "tanh", "silu"], min_length=1, description="hidden activations "
                                   "(relu | tanh | silu | elu)")
    dropouts: list[float] = Field([0.0, 0.1, 0.3, 0.5], min_length=1, description="dropout rates")
    learning_rates: list[float] = Field([1e-4, 3e-4, 1e-3, 3e-3, 1e-2], min_length=1, description="AdamW learning rates")
    weight_decays: list[float] = Field([0.0, 1e-4, 1e-3, 1e-2], min_length=1, description="AdamW weight decays (L2)")
    epoch_choices: list[int] = Field([3, 10, 20], min_length=1, description="training epochs of a child")
    batch_size: int = Field(128, ge=1, description="batch size of a child's training")
    svd_dim: int = Field(128, ge=2, le=1024, description="tfidf_svd: SVD components")
    hash_dim: int = Field(1024, ge=16, le=65536, description="hashed_bow: hash buckets")

    @field_validator("representations")
    @classmethod
    def _reps(cls, v):
        bad = [r for r in v if r not in ("minilm", "tfidf_svd", "hashed_bow", "raw")]
        if bad:
            raise ValueError(f"unknown representation {bad[0]!r}; valid: minilm, tfidf_svd, hashed_bow, raw")
        if len(set(v)) != len(v):
            raise ValueError(f"lists a representation twice ({v})")
        return v

    @field_validator("activations")
    @classmethod
    def _acts(cls, v):
        bad = [a for a in v if a not in ACTIVATIONS]
        if bad:
            raise ValueError(f"unknown activation {bad[0]!r}; valid: {', '.join(ACTIVATIONS)}")
        return v

    @field_validator("dropouts")
    @classmethod
    def _drops(cls, v):
        if any(not 0 <= d < 1 for d in v):
            raise ValueError(f"dropout rates must be in [0, 1) (got {v})")
        return v

    def space_fields(self) -> dict:
        return {k: getattr(self, k) for k in TextSpaceConfig.model_fields}


class TextSpace:
    """Decisions of the text space and the map choices <-> spec (plain JSON)."""

    name = "text"

    def __init__(self, cfg: TextSpaceConfig):
        self.config = cfg
        self.choices: dict[str, list] = {
            "representation": list(cfg.representations), "layers": list(range(cfg.max_layers + 1)),
            "width": list(cfg.widths), "activation": list(cfg.activations), "dropout": list(cfg.dropouts),
            "batch_norm": [False, True], "lr": list(cfg.learning_rates), "weight_decay": list(cfg.weight_decays),
            "epochs": list(cfg.epoch_choices),
        }
        self.decisions = tuple(Decision(k, k, len(v)) for k, v in self.choices.items())

    def labels(self) -> dict[str, list]:
        """Every decision's choices (what a saved controller records to check a transfer)."""
        return {k: list(v) for k, v in self.choices.items()}

    def decode(self, choices: Sequence[int]) -> dict:
        choices = [int(c) for c in choices]
        if len(choices) != len(self.decisions):
            raise ConfigError(f"architecture: expected {len(self.decisions)} choices for the text space (got {len(choices)})")
        spec = {}
        for d, c in zip(self.decisions, choices):
            if not 0 <= c < d.num_choices:
                raise ConfigError(f"architecture: {d.name} must be in [0, {d.num_choices}) (got {c})")
            spec[d.name] = self.choices[d.name][c]
        return spec

    def encode(self, spec: dict) -> list[int]:
        out = []
        for d in self.decisions:
            if spec.get(d.name) not in self.choices[d.name]:
                raise ConfigError(f"spec.{d.name}: {spec.get(d.name)!r} is not a choice of this text space "
                                  f"({self.choices[d.name]})")
            out.append(self.choices[d.name].index(spec[d.name]))
        return out

    def check_task(self, task: Task) -> None:
        """The task must allow at least one of the space's representations."""
        allowed = representation_kinds(task)
        if not set(self.config.representations) & set(allowed):
            raise ConfigError(f"representations: none of {self.config.representations} fits task '{task.name}' "
                              f"({task.kind} inputs allow: {', '.join(allowed)})")

    def representation_for(self, spec: dict, task: Task) -> str:
        """The spec's representation, or the first allowed one when it does not fit the task's inputs."""
        allowed = representation_kinds(task)
        rep = spec["representation"]
        return rep if rep in allowed else next(r for r in self.config.representations if r in allowed)

    def features(self, task: Task, rep: str) -> TaskFeatures:
        return task_features(task, rep, {"svd_dim": self.config.svd_dim, "hash_dim": self.config.hash_dim})


def _mlp(spec: dict, in_dim: int, num_classes: int) -> FeatureMLP:
    return FeatureMLP(in_dim, [spec["width"]] * spec["layers"], num_classes, spec["activation"], spec["dropout"],
                      spec["batch_norm"])


def train_text_child(space: TextSpace, spec: dict, task: Task, seed: int, device: str = "cpu",
                     with_val: bool = False) -> tuple[FeatureMLP, dict]:
    """Train the MLP of ``spec`` on the cached features of ``task``; return it and its record.

    The record holds the validation accuracy (the reward), the representation used and the seconds spent
    training (the features are computed once and not counted here; ``feature_seconds`` says what reading
    or computing them took).
    """
    rep = space.representation_for(spec, task)
    feats = space.features(task, rep)
    with RNG_LOCK:
        torch.manual_seed(seed)
        mlp = _mlp(spec, feats.x_train.shape[1], task.num_classes).to(device)
    batch, n = space.config.batch_size, len(task.y_train)
    while n % batch == 1 and batch < n:  # a last batch of one example would break batch norm
        batch += 1
    cfg = TrainConfig(epochs=spec["epochs"], batch_size=batch, optimizer="adamw", lr=spec["lr"],
                      weight_decay=spec["weight_decay"], schedule="cosine", eval_every=0)
    start = time.perf_counter()
    history = fit(mlp, (feats.x_train, task.y_train), cfg, val=(feats.x_val, task.y_val) if with_val else None,
                  seed=seed, device=device)
    val = evaluate_accuracy(mlp, feats.x_val, task.y_val, device=device)
    rec = {"val_accuracy": val, "representation": rep, "seconds": time.perf_counter() - start,
           "feature_seconds": feats.seconds, "history": history}
    return mlp, rec


def build_text_child(space: TextSpace, spec: dict, task: Task, mlp: FeatureMLP) -> TextChild:
    """The standalone child: the fitted representation + the trained MLP, as a registered ``text_child``."""
    from ...models.base import build_model

    rep = space.representation_for(spec, task)
    feats = space.features(task, rep)
    model_spec = {"name": "text_child", "representation": feats.spec, "hidden": [spec["width"]] * spec["layers"],
                  "activation": spec["activation"], "dropout": spec["dropout"], "batch_norm": spec["batch_norm"]}
    model = build_model(model_spec, task.input_shape, task.num_classes)
    if feats.state:
        model.representation.load_state_dict(feats.state, strict=False)
    assert representation_dim(feats.spec) == feats.x_train.shape[1]
    model.mlp.load_state_dict(mlp.state_dict())
    return model.eval()
