"""Why weight sharing is cheap: the cost of judging one architecture, ENAS vs random search, in one run.

    python benchmarks/search_speed.py        # -> benchmarks/results/search_speed.json

On mnist5k with the macro space of experiments/enas-mnist.yaml (4 layers, 16 channels), for the same
sampled architectures:

- ENAS judges a child by one forward pass of the shared-weight supernet on a validation minibatch
  (64 examples, as in the experiment), after sampling it from the LSTM controller;
- random search judges a child by building it, training it for one epoch (3,400 examples) and
  scoring it on the validation split (600 examples).

``value`` = median ENAS time per child / median random-search time per child. Also measured: one
shared-weight training step (sample + forward + backward + update on the supernet) against one step of
the same child standalone, i.e. the supernet's own overhead.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_result  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    import torch

    torch.set_num_threads(1)
    from childnet import load_task
    from childnet.methods.search import LSTMController, make_space
    from childnet.methods.search.random_search import TrialData, train_trial
    from childnet.models import build_model
    from childnet.train import TrainConfig, make_optimizer
    from childnet.methods.search._common import CHILD_TRAIN_DEFAULTS, accuracy_of

    task = load_task("mnist5k")
    space = make_space({"space": "macro", "layers": 4, "channels": 16})
    torch.manual_seed(0)
    supernet = space.build_supernet(task.input_shape, task.num_classes).eval()
    controller = LSTMController(space.decisions, seed=0)
    xv, yv = task.x_val[:64], task.y_val[:64]

    def enas_judge():
        spec = space.decode(controller.sample()[0])
        supernet.set_arch(spec)
        accuracy_of(supernet, xv, yv, batch_size=64)

    data = TrialData(task.x_train, task.y_train, task.x_val, task.y_val, task.input_shape, task.num_classes)
    train = dict(CHILD_TRAIN_DEFAULTS, epochs=1, lr=0.2, batch_size=32)
    specs = iter([space.decode(c) for c in controller.sample(64)])

    def random_judge():
        train_trial(space.model_spec(next(specs)), data, train, seed=0)

    enas_judge()
    enas_s = _median_time(enas_judge, 50)
    random_s = _median_time(random_judge, 5)

    # the supernet's own overhead per training step (32 examples), same child standalone
    xb, yb = task.x_train[:32], task.y_train[:32]
    spec = space.decode(controller.sample()[0])
    child = build_model(space.model_spec(spec), task.input_shape, task.num_classes).train()
    supernet.train()
    cfg = TrainConfig(**train)
    opts = {"supernet": make_optimizer(supernet.parameters(), cfg), "child": make_optimizer(child.parameters(), cfg)}

    def step(model, name, resample=False):
        if resample:
            model.set_arch(space.decode(controller.sample()[0]))
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    supernet.set_arch(spec)
    super_step = _median_time(lambda: step(supernet, "supernet"), 30)
    super_step_sampled = _median_time(lambda: step(supernet, "supernet", resample=True), 30)
    child_step = _median_time(lambda: step(child, "child"), 30)
    ratio = enas_s / random_s
    raw = {"enas_seconds_per_child": enas_s, "random_search_seconds_per_child": random_s,
           "enas_children_judged": 50, "random_children_judged": 5,
           "supernet_step_seconds_same_child": super_step, "supernet_step_seconds_with_sampling": super_step_sampled,
           "standalone_child_step_seconds": child_step,
           "supernet_overhead_same_child": super_step / child_step,
           "space": "macro, 4 layers, 16 channels, mnist5k", "torch_threads": 1}
    write_result("search_speed", "ENAS seconds to judge one architecture / random search's (1 epoch + val)",
                 ratio, "<= 0.01", ratio <= 0.01, raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
