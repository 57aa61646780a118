"""Speed of the Neural AutoML text search (issue 13): the representation cache and the controller overhead.

    python benchmarks/naml_speed.py            # -> benchmarks/results/naml_speed.json

1. **Representation cache** — two searches on the same task, one after the other, with a fresh cache
   folder: the first fits and computes every representation (TF-IDF+SVD, hashed bag of words, MiniLM), the
   second (in-process copies dropped, as in a new process) reads them from the disk cache. Metric: time
   spent obtaining the representations in the second search / in the first (target <= 0.1).
2. **Controller overhead** — one search of the task-conditioned controller (``naml``, single task):
   seconds in ``sample`` + ``update`` / seconds training children (target <= 0.05).

One torch thread; raw times in the JSON.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RESULTS, command  # noqa: E402

TASK = {"name": "political-debates", "max_length": 64}
SPACE = {"representations": ["tfidf_svd", "hashed_bow", "minilm"], "epoch_choices": [2, 5, 10], "hash_dim": 512}


def _search(label: str, cfg: dict, task, parent):
    """Run one search; return the child, its wall time and the representations' own record (compute or load)."""
    from childnet.api import derive
    from childnet.methods.search.text_space import TextSpace, TextSpaceConfig

    t0 = time.perf_counter()
    child = derive(label, parent, task, cfg, seed=0)
    wall = time.perf_counter() - t0
    space = TextSpace(TextSpaceConfig(**{k: v for k, v in cfg.items() if k in TextSpaceConfig.model_fields}))
    feats = [space.features(task, rep) for rep in cfg["representations"]]  # the in-process copies of this search
    return child, wall, sum(f.seconds for f in feats), all(f.from_cache for f in feats)


def main() -> int:
    import torch

    torch.set_num_threads(1)
    os.environ["CHILDNET_CACHE"] = tempfile.mkdtemp(prefix="naml-speed-")
    from childnet import get_parent, load_task
    from childnet.methods.search.text_features import clear_memory

    task = load_task(TASK)
    parent = get_parent({"model": {"name": "minilm", "layers": 1}, "pretrained": True}, task)
    # one short search per representation (a 1-choice space forces it), so every one is computed
    per_rep = {}
    for rep in SPACE["representations"]:
        cfg = {**SPACE, "representations": [rep], "controller": "random", "steps": 1, "children_per_step": 2}
        per_rep[rep] = cfg
    first, second = {}, {}
    for rep, cfg in per_rep.items():
        _, wall, feat, cached = _search("text_search", cfg, task, parent)
        first[rep] = {"search_wall_s": wall, "representation_s": feat, "read_from_disk": cached}
    clear_memory()
    for rep, cfg in per_rep.items():
        _, wall, feat, cached = _search("text_search", cfg, task, parent)
        second[rep] = {"search_wall_s": wall, "representation_s": feat, "read_from_disk": cached}
    t1 = sum(v["representation_s"] for v in first.values())
    t2 = sum(v["representation_s"] for v in second.values())
    cache_ratio = t2 / t1

    clear_memory()
    cfg = {**SPACE, "steps": 8, "children_per_step": 4}
    child, wall, _, _ = _search("naml", cfg, task, parent)
    search = child.lineage.extra["search"]
    overhead = search["controller_seconds"] / search["child_seconds"]

    results = [
        {"name": "naml_representation_cache", "metric": "representation time, second search / first search",
         "value": round(cache_ratio, 4), "target": "<= 0.1", "passed": cache_ratio <= 0.1,
         "raw": {"first_search": first, "second_search": second, "first_total_s": t1, "second_total_s": t2,
                 "task": TASK}},
        {"name": "naml_controller_overhead", "metric": "controller sample+update seconds / child-training seconds",
         "value": round(overhead, 4), "target": "<= 0.05", "passed": overhead <= 0.05,
         "raw": {"controller_seconds": search["controller_seconds"], "child_seconds": search["child_seconds"],
                 "feature_seconds": search["feature_seconds"], "children": search["children"],
                 "search_wall_s": wall, "task": TASK}},
    ]
    data = {"name": "naml_speed", "command": command(), "benchmarks": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "naml_speed.json").write_text(json.dumps(data, indent=2) + "\n")
    for r in results:
        print(json.dumps({k: r[k] for k in ("name", "value", "target", "passed")}))
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
