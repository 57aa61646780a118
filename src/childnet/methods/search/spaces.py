"""Search spaces: a list of decisions, and the map between a controller's choices and a JSON spec.

A space is what a controller sees: ``space.decisions``, each a categorical with ``num_choices`` options
and a ``kind`` (``op``, ``skip`` or ``input``). ``space.decode(choices)`` turns one integer per
decision into an architecture **spec** — plain JSON — and ``space.model_spec(spec)`` into the spec of
a registered model (``enas_macro`` / ``enas_micro``) that :func:`childnet.models.build_model` builds
and :meth:`childnet.Child.load` rebuilds.

Spaces of Pham et al. (2018, arXiv 1802.03268):

- ``macro`` (section 2.4): L layers; layer i picks one op and, for every earlier layer j < i, whether
  to add a skip connection from j. Spec: ``{"space": "macro", "layers": [{"op": "conv3x3",
  "skips": [0]}, ...]}``.
- ``micro`` (section 2.3): a normal and a reduction cell of B nodes; node b picks two inputs among the
  two cell inputs and nodes < b, and one op for each. Spec: ``{"space": "micro", "normal": [{"inputs":
  [0, 1], "ops": ["sep3x3", "identity"]}, ...], "reduce": [...]}``.

**Poisoning** (Wu, Saxena, Jain, 2021, arXiv 2106.14406) is configuration of the space: ``poison``
names poison sets P1-P6 and ``poison_copies`` (k) adds poison branches to the op categorical —
multiple-instance poisoning. ``poison_count: per_op`` (ours) appends k copies of EACH poison op;
``poison_count: total`` (the paper's code: its "P6 at 36" is 36 poison branches in all, 6 per op) makes
k the total number of poison branches, split as evenly as possible over the distinct poison ops (the
first k mod m ops get one more). Copies share their weights in the supernet, as in the paper's code
(several categorical entries pick the same branch module).

``poison_preset: paper`` sets the paper code's settings unless a field is given explicitly:
``poison_count: total``, noise sigma 10 with a detached scale, dropout p 1.0 and bare transposed
convolutions. Remaining difference from that code: our stretched convolution and the base ops keep our
ReLU -> Conv -> BN ordering.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal, Sequence

from pydantic import Field, ValidationError, field_validator, model_validator
from torch import nn

from ...config import Config, format_validation_error
from ...errors import ConfigError
from .networks import MacroNet, MicroNet
from .ops import KNOWN_OPS, MACRO_OPS, MICRO_OPS, POISON_SETS, OpOptions, check_op_name

__all__ = ["Decision", "SpaceConfig", "SearchSpace", "MacroSpace", "MicroSpace", "SPACES", "make_space", "poison_branches"]

PoisonSet = Literal["P1", "P2", "P3", "P4", "P5", "P6"]
#: The settings of the poisoning paper's public code (``poison_preset: paper``).
PAPER_POISON = {"poison_count": "total", "noise_sigma": 10.0, "noise_detach": True, "dropout_p": 1.0,
                "bare_tconv": True}


@dataclass(frozen=True)
class Decision:
    """One categorical choice of an architecture.

    Attributes:
        name: where it acts, e.g. ``layer3.op``, ``layer3.skip1``, ``normal.node2.input_a``.
        kind: ``op`` (an op categorical), ``skip`` (0 = no edge, 1 = edge) or ``input`` (an index).
        num_choices: number of options.
    """

    name: str
    kind: str
    num_choices: int


class SpaceConfig(Config):
    """The search space, as flat fields of a search method's config (so a sweep can vary ``k``)."""

    space: Literal["macro", "micro"] = Field("macro", description="search space: macro (layers) | micro (cells)")
    layers: int = Field(6, ge=1, le=30, description="macro: layers; micro: normal cells. Spatial reductions "
                        "follow layer floor(L/3) and floor(2L/3) (ENAS)")
    nodes: int = Field(4, ge=1, le=10, description="micro: nodes per cell (B; ENAS uses 5)")
    channels: int = Field(16, ge=1, le=1024, description="channels of every layer during the search")
    ops: list[str] | None = Field(None, description="candidate ops (default: the space's ENAS ops)")
    poison: list[PoisonSet] = Field(default_factory=list, description="poison sets added to the op choices "
                                    "(P1 identity, P2 noise, P3 dropout, P4 transposed convs, P5 stretched conv, P6 all)")
    poison_copies: int = Field(1, ge=0, le=10000, description="k: copies of each poison op among the op choices "
                               "(multiple-instance poisoning; 0: no poison)")
    noise_sigma: float = Field(2.0, gt=0, description="sigma of the P2 relative-noise op (paper: 2 or 10)")
    dropout_p: float = Field(0.9, ge=0, le=1, description="p of the P3 dropout op (paper: 0.9 or 1.0)")
    poison_count: Literal["per_op", "total"] = Field(
        "per_op", description="k counts copies of each poison op (per_op) or all poison branches (total, paper code)")
    noise_detach: bool = Field(False, description="P2 noise scale computed on a detached input (paper code)")
    bare_tconv: bool = Field(False, description="P4 transposed convs without ReLU/BN (paper code)")
    poison_preset: Literal["ours", "paper"] = Field(
        "ours", description="paper: poison_count total, noise_sigma 10, noise_detach, dropout_p 1.0, bare_tconv "
                            "(fields given explicitly win)")

    @model_validator(mode="before")
    @classmethod
    def _apply_poison_preset(cls, data):
        if isinstance(data, dict) and data.get("poison_preset") == "paper":
            data = {**PAPER_POISON, **data}
        return data

    @model_validator(mode="after")
    def _poison_named(self):
        # k copies of nothing would silently search the clean space (a sweep over k would train the same space
        # again and again); k 0 or 1 (the default) is fine without poison, and so is an explicit `poison: []`
        # (a clean arm beside poisoned ones sharing one k)
        if not self.poison and self.poison_copies > 1 and "poison" not in self.model_fields_set:
            raise ValueError(f"poison_copies {self.poison_copies} poisons the space, but no poison set is given, "
                             "so the space stays clean; give poison: [P6] (all) or some of P1 … P5 (or poison: [] "
                             "for a clean space on purpose)")
        return self

    @field_validator("ops")
    @classmethod
    def _known_ops(cls, ops):
        if ops is None:
            return ops
        if not ops:
            raise ValueError("needs at least one op")
        for op in ops:
            check_op_name(op, KNOWN_OPS)
        if len(set(ops)) != len(ops):
            raise ValueError(f"lists an op twice ({ops}); use poison_copies for multiple instances")
        return ops

    def space_fields(self) -> dict:
        """Just the fields of :class:`SpaceConfig` (a method config carries more)."""
        return {k: getattr(self, k) for k in SpaceConfig.model_fields}


def poison_branches(poison: Sequence[str], k: int, count: str = "per_op") -> tuple[str, ...]:
    """The poison entries of the op categorical: k copies of each op (``per_op``), or k in all (``total``)."""
    if count == "per_op" or not poison:
        return tuple(poison) * k
    m = len(poison)
    return tuple(op for i, op in enumerate(poison) for _ in range(k // m + (i < k % m)))


def _op_fields(c: SpaceConfig) -> dict:
    return {"noise_sigma": c.noise_sigma, "dropout_p": c.dropout_p, "noise_detach": c.noise_detach,
            "bare_tconv": c.bare_tconv}


class SearchSpace:
    """Base of a search space: its decisions and the choices <-> spec <-> model maps."""

    name: str = ""
    default_ops: tuple[str, ...] = ()

    def __init__(self, cfg: SpaceConfig):
        self.config = cfg
        self.base_ops = tuple(cfg.ops or self.default_ops)
        poison = tuple(dict.fromkeys(op for p in cfg.poison for op in POISON_SETS[p]))
        #: The op categorical: the base ops, then the poison branches (k per op, or k in all).
        self.op_choices = self.base_ops + poison_branches(poison, cfg.poison_copies, cfg.poison_count)
        self.ops = tuple(dict.fromkeys(self.op_choices))  # distinct ops (one module each in the supernet)
        branches = set(self.op_choices[len(self.base_ops):])
        self.poison_ops = frozenset(op for op in poison if op not in self.base_ops and op in branches)
        self.decisions: tuple[Decision, ...] = tuple(self._decisions())

    # -- to be defined by each space -------------------------------------------------------------
    def _decisions(self) -> list[Decision]:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, choices: Sequence[int]) -> dict:  # pragma: no cover - abstract
        """The architecture spec of one integer per decision."""
        raise NotImplementedError

    def encode(self, spec: dict) -> list[int]:  # pragma: no cover - abstract
        """The choices of a spec (raises ConfigError if it does not fit the space)."""
        raise NotImplementedError

    def ops_in(self, spec: dict) -> list[str]:  # pragma: no cover - abstract
        """Every op a spec uses, one per op decision."""
        raise NotImplementedError

    def model_spec(self, spec: dict, channels: int | None = None) -> dict:  # pragma: no cover - abstract
        """The registered-model spec (``{"name": "enas_...", ...}``) of a standalone child."""
        raise NotImplementedError

    def build_supernet(self, input_shape: tuple, num_classes: int) -> nn.Module:  # pragma: no cover
        """The network holding the shared weights of every child of the space."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    def check_choices(self, choices: Sequence[int]) -> list[int]:
        """Validate one choice per decision, each within its range."""
        choices = [int(c) for c in choices]
        if len(choices) != len(self.decisions):
            raise ConfigError(f"architecture: expected {len(self.decisions)} choices for this {self.name} space "
                              f"(got {len(choices)})")
        for d, c in zip(self.decisions, choices):
            if not 0 <= c < d.num_choices:
                raise ConfigError(f"architecture: {d.name} must be in [0, {d.num_choices}) (got {c})")
        return choices

    def op_index(self, op: object, where: str) -> int:
        """Index of ``op`` in the op categorical (its first copy)."""
        if op not in self.op_choices:
            raise ConfigError(f"{where}: op {op!r} is not in this {self.name} space "
                              f"(ops: {', '.join(self.ops)})")
        return self.op_choices.index(op)

    def op_options(self, track_stats: bool) -> OpOptions:
        c = self.config
        return OpOptions(c.channels, track_stats, c.noise_sigma, c.dropout_p, c.noise_detach, c.bare_tconv)

    def poison_fraction(self, spec: dict) -> float:
        """Fraction of the spec's op slots that hold a poison op."""
        ops = self.ops_in(spec)
        return sum(op in self.poison_ops for op in ops) / max(1, len(ops))

    def op_counts(self, specs: Sequence[dict]) -> Counter:
        """How often each op appears over ``specs``."""
        return Counter(op for s in specs for op in self.ops_in(s))

    def _check_space_key(self, spec: dict) -> None:
        if not isinstance(spec, dict):
            raise ConfigError(f"spec: expected a mapping (got {type(spec).__name__})")
        if spec.get("space", self.name) != self.name:
            raise ConfigError(f"spec.space: this is a {self.name} space (got a {spec.get('space')!r} spec)")


class MacroSpace(SearchSpace):
    """ENAS macro space: L layers, one op each plus skip connections to any earlier layer."""

    name = "macro"
    default_ops = MACRO_OPS

    def _decisions(self) -> list[Decision]:
        out = []
        for i in range(self.config.layers):
            out.append(Decision(f"layer{i}.op", "op", len(self.op_choices)))
            out += [Decision(f"layer{i}.skip{j}", "skip", 2) for j in range(i)]
        return out

    def decode(self, choices: Sequence[int]) -> dict:
        it = iter(self.check_choices(choices))
        layers = []
        for i in range(self.config.layers):
            op = self.op_choices[next(it)]
            layers.append({"op": op, "skips": [j for j in range(i) if next(it) == 1]})
        return {"space": "macro", "layers": layers}

    def encode(self, spec: dict) -> list[int]:
        self._check_space_key(spec)
        layers = spec.get("layers")
        if not isinstance(layers, list) or len(layers) != self.config.layers:
            got = len(layers) if isinstance(layers, list) else layers
            raise ConfigError(f"spec.layers: expected a list of {self.config.layers} layers for this macro space (got {got!r})")
        choices = []
        for i, layer in enumerate(layers):
            choices.append(self.op_index(layer.get("op"), f"spec.layers[{i}].op"))
            skips = set(layer.get("skips", []))
            if not skips <= set(range(i)):
                raise ConfigError(f"spec.layers[{i}].skips: layer {i} can only connect to layers 0..{i - 1} "
                                  f"(got {sorted(skips)})")
            choices += [int(j in skips) for j in range(i)]
        return choices

    def ops_in(self, spec: dict) -> list[str]:
        return [layer["op"] for layer in spec["layers"]]

    def model_spec(self, spec: dict, channels: int | None = None) -> dict:
        self.encode(spec)
        c = self.config
        return {"name": "enas_macro", "channels": channels or c.channels,
                "layers": [{"op": layer["op"], "skips": list(layer.get("skips", []))} for layer in spec["layers"]],
                **_op_fields(c)}

    def build_supernet(self, input_shape: tuple, num_classes: int) -> nn.Module:
        layer_ops = [list(self.ops)] * self.config.layers
        return MacroNet(input_shape, num_classes, layer_ops, self.op_options(track_stats=False))


class MicroSpace(SearchSpace):
    """ENAS micro space: a normal and a reduction cell of B nodes (two inputs, two ops each)."""

    name = "micro"
    default_ops = MICRO_OPS
    cells = ("normal", "reduce")

    def _decisions(self) -> list[Decision]:
        out = []
        for cell in self.cells:
            for b in range(self.config.nodes):
                for slot in ("a", "b"):
                    out.append(Decision(f"{cell}.node{b}.input_{slot}", "input", b + 2))
                    out.append(Decision(f"{cell}.node{b}.op_{slot}", "op", len(self.op_choices)))
        return out

    def decode(self, choices: Sequence[int]) -> dict:
        it = iter(self.check_choices(choices))
        spec: dict = {"space": "micro"}
        for cell in self.cells:
            nodes = []
            for _ in range(self.config.nodes):
                ia, oa, ib, ob = (next(it) for _ in range(4))
                nodes.append({"inputs": [ia, ib], "ops": [self.op_choices[oa], self.op_choices[ob]]})
            spec[cell] = nodes
        return spec

    def encode(self, spec: dict) -> list[int]:
        self._check_space_key(spec)
        choices = []
        for cell in self.cells:
            nodes = spec.get(cell)
            if not isinstance(nodes, list) or len(nodes) != self.config.nodes:
                got = len(nodes) if isinstance(nodes, list) else nodes
                raise ConfigError(f"spec.{cell}: expected {self.config.nodes} nodes for this micro space (got {got!r})")
            for b, node in enumerate(nodes):
                inputs, ops = list(node.get("inputs", [])), list(node.get("ops", []))
                if len(inputs) != 2 or len(ops) != 2:
                    raise ConfigError(f"spec.{cell}[{b}]: a node has two inputs and two ops (got {node!r})")
                for slot, (i, op) in enumerate(zip(inputs, ops)):
                    if not isinstance(i, int) or not 0 <= i < b + 2:
                        raise ConfigError(f"spec.{cell}[{b}].inputs[{slot}]: node {b} reads the two cell inputs "
                                          f"(0, 1) or an earlier node (2..{b + 1}) (got {i!r})")
                    choices += [i, self.op_index(op, f"spec.{cell}[{b}].ops[{slot}]")]
        return choices

    def ops_in(self, spec: dict) -> list[str]:
        return [op for cell in self.cells for node in spec[cell] for op in node["ops"]]

    def model_spec(self, spec: dict, channels: int | None = None) -> dict:
        self.encode(spec)
        c = self.config
        copy = {cell: [{"inputs": list(n["inputs"]), "ops": list(n["ops"])} for n in spec[cell]] for cell in self.cells}
        return {"name": "enas_micro", "channels": channels or c.channels, "cells": c.layers, **copy,
                **_op_fields(c)}

    def build_supernet(self, input_shape: tuple, num_classes: int) -> nn.Module:
        ops = list(self.ops)
        return MicroNet(input_shape, num_classes, self.config.layers, self.config.nodes,
                        {cell: [[ops, ops]] * self.config.nodes for cell in self.cells},
                        self.op_options(track_stats=False))


SPACES: dict[str, type[SearchSpace]] = {"macro": MacroSpace, "micro": MicroSpace}


def make_space(cfg: SpaceConfig | dict) -> SearchSpace:
    """The search space a config describes (a method config that extends SpaceConfig works too)."""
    if isinstance(cfg, dict):
        name = cfg.get("space", "macro")
        if name not in SPACES:
            raise ConfigError(f"space: unknown search space {name!r}; valid spaces: {', '.join(SPACES)}")
        try:
            cfg = SpaceConfig(**cfg)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err)) from None
    return SPACES[cfg.space](cfg)
