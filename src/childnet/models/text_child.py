"""``text_child``: a small network on a fixed text (or feature) representation — the child of the
Neural AutoML text search (:mod:`childnet.methods.search.naml`; space after Houlsby et al. 2019, Table 5).

The model is ``head(mlp(representation(x)))``. The representation is frozen (fitted once per task on
its training split, see :mod:`childnet.methods.search.text_features`) and is part of the model, so a
saved child predicts from the task's own inputs (MiniLM token ids) and reloads from its spec:

- ``minilm``: the pretrained all-MiniLM-L6-v2 encoder, mean-pooled (384 dims; Reimers & Gurevych 2019).
- ``tfidf_svd``: TF-IDF over the WordPiece tokens of the training split (smooth idf, raw counts,
  L2-normalised, as scikit-learn's ``TfidfVectorizer``), projected by truncated SVD (LSA). Ours: the
  vocabulary is MiniLM's WordPiece (not words), so the child needs no second tokeniser.
- ``hashed_bow``: signed feature hashing of the WordPiece tokens into ``dim`` buckets, L2-normalised
  (Weinberger et al. 2009).
- ``raw``: numeric inputs (images, tabular), flattened and standardised with the training mean / std.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ..config import Config
from ..errors import ConfigError
from ..registry import MODELS
from .base import ChildnetModel

__all__ = ["TextChildConfig", "TextChild", "build_representation", "REPRESENTATIONS", "ACTIVATIONS"]

REPRESENTATIONS = ("minilm", "tfidf_svd", "hashed_bow", "raw")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU, "elu": nn.ELU}
#: BERT-uncased ids of [PAD], [CLS], [SEP]: not counted as words.
SPECIAL_IDS = (0, 101, 102)


def _token_weights(x: dict) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, dict) or "input_ids" not in x:
        raise ConfigError("model text_child: this representation reads tokenised text {input_ids, attention_mask} "
                          "(a text task); use representation 'raw' for numeric inputs")
    ids = x["input_ids"].long()
    w = x.get("attention_mask", torch.ones_like(ids)).float()
    for s in SPECIAL_IDS:
        w = w * (ids != s).float()
    return ids, w


class HashedBagOfWords(nn.Module):
    """Signed hashing of token ids into ``dim`` buckets; L2-normalised counts."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)  # the hash: a fixed random bucket and sign per token id
        self.register_buffer("bucket", torch.randint(0, dim, (vocab_size,), generator=g))
        self.register_buffer("sign", torch.randint(0, 2, (vocab_size,), generator=g).float() * 2 - 1)
        self.dim = dim

    def forward(self, x: dict) -> torch.Tensor:
        ids, w = _token_weights(x)
        out = torch.zeros(ids.shape[0], self.dim, dtype=torch.float32, device=ids.device)
        out.scatter_add_(1, self.bucket[ids], self.sign[ids] * w)
        return out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)


class TfidfSvd(nn.Module):
    """``normalise(counts * idf) @ components.T`` over the token ids seen in training."""

    def __init__(self, vocab_size: int, used: int, dim: int):
        super().__init__()
        self.register_buffer("index", torch.zeros(vocab_size, dtype=torch.long))  # token id -> 1 + column (0: unseen)
        self.register_buffer("idf", torch.ones(used))
        self.register_buffer("components", torch.zeros(dim, used))
        self.used = used

    def tfidf(self, x: dict) -> torch.Tensor:
        ids, w = _token_weights(x)
        counts = torch.zeros(ids.shape[0], self.used + 1, dtype=torch.float32, device=ids.device)
        counts.scatter_add_(1, self.index[ids], w)
        t = counts[:, 1:] * self.idf
        return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def forward(self, x: dict) -> torch.Tensor:
        return self.tfidf(x) @ self.components.T


class MiniLMMean(nn.Module):
    """The frozen pretrained MiniLM encoder, mean-pooled over real tokens."""

    def __init__(self):
        super().__init__()
        from .minilm import MiniLMConfig, _encoder

        self.encoder = _encoder(MiniLMConfig())
        self.encoder.eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):  # the encoder stays in eval mode (no dropout): a fixed representation
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, x: dict) -> torch.Tensor:
        _token_weights(x)
        ids, mask = x["input_ids"], x.get("attention_mask", torch.ones_like(x["input_ids"]))
        longest = max(1, int(mask.sum(1).max().item())) if mask.numel() else ids.shape[1]
        ids, mask = ids[:, :longest], mask[:, :longest]
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


class RawFeatures(nn.Module):
    """Flatten, then standardise with the training split's mean and std."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, dict):
            raise ConfigError("model text_child: representation 'raw' needs numeric inputs; this task is text "
                              "(use minilm, tfidf_svd or hashed_bow)")
        return (x.flatten(1).float() - self.mean) / self.std


def build_representation(spec: dict) -> nn.Module:
    """The representation module of ``{"kind": ..., ...sizes}`` (weights to be loaded or fitted)."""
    kind = spec["kind"]
    if kind == "minilm":
        return MiniLMMean()
    if kind == "tfidf_svd":
        return TfidfSvd(spec["vocab_size"], spec["used"], spec["dim"])
    if kind == "hashed_bow":
        return HashedBagOfWords(spec["vocab_size"], spec["dim"])
    if kind == "raw":
        return RawFeatures(spec["dim"])
    raise ConfigError(f"model text_child: unknown representation {kind!r}; valid: {', '.join(REPRESENTATIONS)}")


class FeatureMLP(nn.Module):
    """``Linear -> [BatchNorm] -> activation -> [Dropout]`` per hidden layer, then a linear head."""

    def __init__(self, in_dim: int, hidden: list[int], num_classes: int, activation: str = "relu",
                 dropout: float = 0.0, batch_norm: bool = False):
        super().__init__()
        layers, d = [], in_dim
        for h in hidden:
            layers.append(nn.Linear(d, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))
            d = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, num_classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(f))


class TextChildConfig(Config):
    """Options of the ``text_child`` model (written by the search; rebuilds a saved child)."""

    representation: dict = Field(description="{kind: minilm|tfidf_svd|hashed_bow|raw, dim, ...sizes}")
    hidden: list[int] = Field(default_factory=list, description="width of each hidden layer (empty: linear model)")
    activation: Literal["relu", "tanh", "silu", "elu"] = Field("relu", description="hidden-layer activation")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each hidden layer")
    batch_norm: bool = Field(False, description="batch norm after each hidden linear layer")


class TextChild(ChildnetModel):
    """A frozen representation followed by a trainable MLP (``mlp.body``) and head (``mlp.head``)."""

    def __init__(self, representation: nn.Module, mlp: FeatureMLP):
        super().__init__()
        self.representation = representation
        self.mlp = mlp
        self.head = mlp.head
        for p in self.representation.parameters():
            p.requires_grad_(False)

    def forward_features(self, x) -> torch.Tensor:
        with torch.no_grad():
            f = self.representation(x)
        return self.mlp.body(f)


def representation_dim(spec: dict) -> int:
    return 384 if spec["kind"] == "minilm" else int(spec["dim"])


@MODELS.register("text_child", config=TextChildConfig, tiny={"representation": {"kind": "raw"}, "hidden": [4]})
def text_child(cfg: TextChildConfig, input_shape: tuple, num_classes: int) -> TextChild:
    """Frozen text representation (MiniLM / TF-IDF+SVD / hashed BoW / raw) + small MLP (Neural AutoML child)."""
    spec = dict(cfg.representation)
    if spec.get("kind") == "raw" and "dim" not in spec:
        spec["dim"] = math.prod(input_shape)
    mlp = FeatureMLP(representation_dim(spec), list(cfg.hidden), num_classes, cfg.activation, cfg.dropout,
                     cfg.batch_norm)
    return TextChild(build_representation(spec), mlp)
