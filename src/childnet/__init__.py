"""childnet: child networks derived from a parent — inherit, tune, prune, ensemble, search.

Public API::

    from childnet import load_task, get_parent, derive, evaluate, Child, run_experiment
"""

from ._version import __version__
from .api import derive, predict, run_experiment
from .child import Child, Lineage
from .errors import ChildnetError, ConfigError, MissingDependencyError
from .evaluate import evaluate
from .models import build_model
from .parent import Parent, get_parent
from .tasks import Task, load_task

__all__ = [
    "__version__",
    "Child",
    "Lineage",
    "ChildnetError",
    "ConfigError",
    "MissingDependencyError",
    "Parent",
    "Task",
    "build_model",
    "derive",
    "evaluate",
    "get_parent",
    "load_task",
    "predict",
    "run_experiment",
]
