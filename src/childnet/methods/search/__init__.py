"""search: an architecture sampled by a controller (random search, ENAS, search-space poisoning).

The pieces are general so other searches reuse them: a :class:`SearchSpace` is a flat list of
:class:`Decision` s with a JSON spec per architecture; a controller follows the small
:class:`Controller` protocol (``sample``, ``update(samples, rewards)``); the supernet is the same
network class as a standalone child (``enas_macro`` / ``enas_micro`` models), holding every op.
"""

from .controller import Controller, ControllerConfig, LSTMController, UniformController
from .ops import KNOWN_OPS, MACRO_OPS, MICRO_OPS, POISON_SETS
from .spaces import SPACES, Decision, MacroSpace, MicroSpace, SearchSpace, SpaceConfig, make_space

__all__ = [
    "Controller",
    "ControllerConfig",
    "Decision",
    "KNOWN_OPS",
    "LSTMController",
    "MACRO_OPS",
    "MICRO_OPS",
    "MacroSpace",
    "MicroSpace",
    "POISON_SETS",
    "SPACES",
    "SearchSpace",
    "SpaceConfig",
    "UniformController",
    "make_space",
]
