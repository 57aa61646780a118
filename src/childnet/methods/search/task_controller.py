"""The task-conditioned controller of Transfer Neural AutoML (Wong, Houlsby, Lu, Gesmundo, NeurIPS 2018,
arXiv 1803.02780; precursor: Wong & Gesmundo, "Multitask Neural Model Search", arXiv 1710.10776).

One LSTM policy designs children for many tasks. Each task has a learned embedding; at EVERY step the
LSTM input is ``[embedding of the previous action ; task embedding]`` (not only at the first step), and a
skip connection carries that input across the LSTM cell to the output (``o_t = h_t + S x_t``), so the
task can shift every decision's logits directly. Each decision has its own choice embedding and softmax
head. Training is REINFORCE with one moving-average baseline ``b_t`` per task and task-specific
advantage normalisation: ``A = (R - b_t) / b_t`` (the precursor's, ``advantage: baseline``) or
``A = (R - b_t) / sigma_t`` with a moving-average reward spread per task (``advantage: std``).

Transfer (section 3 of the paper): :meth:`TaskController.transferred` copies the generic weights (LSTM,
choice embeddings, skip, heads) and the known task embeddings, and :meth:`add_task` adds a randomly
initialised embedding for a new task; REINFORCE then continues on the new task only.

Choices (ours, documented): baselines start at the mean reward of a task's first batch (sigma at its
spread); the baseline is updated after the batch's advantages are computed; Adam uses beta1 = 0 as in
ENAS, so the embeddings of tasks not in a batch do not move; logits are shaped ``C tanh(l / T)``.
Save / load: ``controller.safetensors`` + ``controller.json`` (config, decisions and their choices, task
keys, baselines, the tasks it was trained on) — never a pickle.

It follows the :class:`~childnet.methods.search.controller.Controller` protocol, with ``condition``
naming the task (a task key string).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationError
from torch import nn

from ...checkpoint import load_tensors, save_tensors
from ...config import Config, format_validation_error
from ...errors import ChildnetError, ConfigError
from .spaces import Decision

__all__ = ["TaskControllerConfig", "TaskController", "CONTROLLER_FILES"]

CONTROLLER_FILES = ("controller.safetensors", "controller.json")


class TaskControllerConfig(Config):
    """Hyper-parameters of the task-conditioned controller."""

    hidden_size: int = Field(64, ge=1, description="LSTM units")
    task_embedding_size: int = Field(32, ge=1, description="size of each task's learned embedding")
    lr: float = Field(0.005, gt=0, description="Adam learning rate (beta1 0, eps 1e-3, as ENAS)")
    baseline_decay: float = Field(0.9, ge=0, lt=1, description="decay of the per-task moving-average baseline")
    advantage: Literal["baseline", "std"] = Field("baseline", description="advantage normalisation: (R - b_t) / b_t "
                                                  "(baseline, the precursor's) or (R - b_t) / sigma_t (std)")
    entropy_weight: float = Field(0.01, ge=0, description="weight of the policy-entropy bonus in the loss")
    tanh_constant: float | None = Field(1.5, gt=0, description="C of C*tanh(logits/T); null: no shaping")
    temperature: float = Field(1.0, gt=0, description="T of C*tanh(logits/T)")
    grad_clip: float | None = Field(5.0, gt=0, description="clip the gradient norm")


class TaskController(nn.Module):
    """An LSTM policy over ``decisions``, conditioned on a learned task embedding at every step.

    Args:
        decisions: the search space's decisions.
        cfg: hyper-parameters (a config or its dict).
        seed: seeds the initial weights, new task embeddings and every sample (own generator).
        choice_labels: each decision's choices, recorded in the saved file to check a transfer.
    """

    def __init__(self, decisions: Sequence[Decision], cfg: TaskControllerConfig | dict | None = None, seed: int = 0,
                 choice_labels: dict | None = None):
        super().__init__()
        self.decisions = tuple(decisions)
        self.cfg = _config(cfg)
        self.choice_labels = dict(choice_labels or {d.name: list(range(d.num_choices)) for d in self.decisions})
        h, e = self.cfg.hidden_size, self.cfg.task_embedding_size
        self.embed = nn.ModuleList(nn.Embedding(d.num_choices, h) for d in self.decisions)
        self.heads = nn.ModuleList(nn.Linear(h, d.num_choices) for d in self.decisions)
        self.go = nn.Parameter(torch.zeros(1, h))
        self.lstm = nn.LSTMCell(h + e, h)
        self.skip = nn.Linear(h + e, h, bias=False)
        self.task_embeddings = nn.Parameter(torch.zeros(0, e))
        self.tasks: list[str] = []
        self.pretrained_on: list[str] = []
        self.generator = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for p in self.parameters():
                nn.init.uniform_(p, -0.1, 0.1, generator=self.generator)
        self.baselines: dict[str, float] = {}
        self.spreads: dict[str, float] = {}
        self.updates = 0
        self._new_optimizer()

    # -- tasks ----------------------------------------------------------------------------------------
    def _new_optimizer(self) -> None:
        self.optimizer = torch.optim.Adam(self.parameters(), lr=self.cfg.lr, betas=(0.0, 0.999), eps=1e-3)

    def add_task(self, key: str) -> int:
        """Index of task ``key``; a new task gets a randomly initialised embedding (uniform ±0.1)."""
        if key in self.tasks:
            return self.tasks.index(key)
        row = torch.empty(1, self.cfg.task_embedding_size).uniform_(-0.1, 0.1, generator=self.generator)
        self.task_embeddings = nn.Parameter(torch.cat([self.task_embeddings.detach(), row]))
        self.tasks.append(key)
        self._new_optimizer()
        return len(self.tasks) - 1

    def _task_index(self, condition) -> int:
        if not isinstance(condition, str):
            raise ValueError(f"TaskController: condition must name a task (a string key); got {condition!r}")
        if condition not in self.tasks:
            raise ValueError(f"TaskController: unknown task {condition!r}; add_task it first (known: {self.tasks})")
        return self.tasks.index(condition)

    # -- policy ---------------------------------------------------------------------------------------
    def _logits(self, out: torch.Tensor, t: int) -> torch.Tensor:
        logits = self.heads[t](out) / self.cfg.temperature
        return self.cfg.tanh_constant * torch.tanh(logits) if self.cfg.tanh_constant is not None else logits

    def _run(self, n: int, choices: torch.Tensor | None, task: int):
        h = self.cfg.hidden_size
        emb = self.task_embeddings[task].expand(n, -1)
        state = (torch.zeros(n, h), torch.zeros(n, h))
        prev = self.go.expand(n, h)
        picked, log_probs, entropies = [], [], []
        for t in range(len(self.decisions)):
            x = torch.cat([prev, emb], 1)  # the task embedding joins the input at every step
            state = self.lstm(x, state)
            logp = F.log_softmax(self._logits(state[0] + self.skip(x), t), -1)  # skip across the cell
            c = torch.multinomial(logp.exp(), 1, generator=self.generator).squeeze(1) if choices is None else choices[:, t]
            picked.append(c)
            log_probs.append(logp.gather(1, c[:, None]).squeeze(1))
            entropies.append(-(logp.exp() * logp).sum(-1))
            prev = self.embed[t](c)
        return torch.stack(picked, 1), torch.stack(log_probs, 1).sum(1), torch.stack(entropies, 1).sum(1)

    @torch.no_grad()
    def sample(self, n: int = 1, condition: str | None = None) -> list[list[int]]:
        """``n`` architectures for task ``condition``."""
        return self._run(n, None, self._task_index(condition))[0].tolist()

    @torch.no_grad()
    def entropy(self, n: int = 32, condition: str | None = None) -> float:
        return float(self._run(n, None, self._task_index(condition))[2].mean())

    def advantages(self, key: str, rewards: Sequence[float]) -> torch.Tensor:
        """Task-normalised advantages of a batch; then the task's baseline (and spread) move towards it."""
        r = torch.as_tensor(list(rewards), dtype=torch.float32)
        if key not in self.baselines:
            self.baselines[key] = float(r.mean())
            self.spreads[key] = float(r.std()) if len(r) > 1 else 0.0
        b, s = self.baselines[key], self.spreads[key]
        scale = abs(b) if self.cfg.advantage == "baseline" else s
        adv = (r - b) / max(scale, 1e-3)
        d = self.cfg.baseline_decay
        for x in r.tolist():
            self.spreads[key] = d * self.spreads[key] + (1 - d) * abs(x - self.baselines[key])
            self.baselines[key] = d * self.baselines[key] + (1 - d) * x
        return adv

    def update(self, samples: Sequence[Sequence[int]], rewards: Sequence[float],
               condition: str | None = None) -> dict[str, float]:
        """One REINFORCE step for task ``condition`` on its batch (one Adam step)."""
        if len(samples) != len(rewards) or not samples:
            raise ValueError(f"need one reward per sample (got {len(samples)} samples, {len(rewards)} rewards)")
        task = self._task_index(condition)
        choices = torch.as_tensor([list(s) for s in samples], dtype=torch.long)
        _, log_prob, entropy = self._run(len(samples), choices, task)
        baseline = self.baselines.get(condition)
        adv = self.advantages(condition, rewards)
        loss = -(log_prob * adv).mean() - self.cfg.entropy_weight * entropy.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.updates += 1
        return {"reward": float(torch.as_tensor(rewards).mean()), "baseline": self.baselines[condition],
                "baseline_before": baseline, "advantage_abs": float(adv.abs().mean()),
                "entropy": float(entropy.detach().mean()), "loss": float(loss.detach())}

    # -- transfer, save, load -------------------------------------------------------------------------
    def generic_state(self) -> dict[str, torch.Tensor]:
        """Every weight but the task embeddings (what transfers to a new task)."""
        return {k: v for k, v in self.state_dict().items() if k != "task_embeddings"}

    def transferred(self, seed: int) -> "TaskController":
        """A copy to continue on new tasks: generic weights and known task embeddings, a fresh optimizer and
        generator (seeded), per-task baselines dropped; it remembers the tasks it was trained on."""
        new = TaskController(self.decisions, self.cfg, seed, self.choice_labels)
        new.load_state_dict(self.generic_state(), strict=False)
        new.task_embeddings = nn.Parameter(self.task_embeddings.detach().clone())
        new.tasks = list(self.tasks)
        new.pretrained_on = list(dict.fromkeys(self.pretrained_on + self.tasks))
        new._new_optimizer()
        return new

    def files(self) -> dict[str, bytes]:
        """The two files of a saved controller, as bytes (so a child folder can carry them)."""
        from safetensors.torch import save

        meta = {"kind": "task_controller", "config": self.cfg.model_dump(),
                "decisions": [[d.name, d.kind, d.num_choices] for d in self.decisions],
                "choices": self.choice_labels, "tasks": self.tasks, "pretrained_on": self.pretrained_on,
                "baselines": self.baselines, "spreads": self.spreads, "updates": self.updates}
        state = {k: v.detach().contiguous().clone() for k, v in self.state_dict().items()}
        return {"controller.safetensors": save(state), "controller.json": json.dumps(meta, indent=2, default=str).encode()}

    def save(self, folder: str | Path) -> Path:
        """Write ``controller.safetensors`` and ``controller.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = self.files()
        save_tensors(self.state_dict(), folder / CONTROLLER_FILES[0])
        (folder / CONTROLLER_FILES[1]).write_bytes(files[CONTROLLER_FILES[1]])
        return folder

    @classmethod
    def load(cls, folder: str | Path, seed: int = 0) -> "TaskController":
        """A controller saved by :meth:`save` (or a child folder of the ``naml`` method)."""
        folder = Path(folder)
        meta_path = folder / CONTROLLER_FILES[1]
        if not meta_path.exists() or not (folder / CONTROLLER_FILES[0]).exists():
            raise ChildnetError(f"{folder} is not a saved controller (it needs {' and '.join(CONTROLLER_FILES)})")
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ChildnetError(f"{meta_path} is not valid JSON ({err})") from None
        if not isinstance(meta, dict) or meta.get("kind") != "task_controller":
            raise ChildnetError(f"{meta_path} does not describe a task controller (kind: {meta.get('kind') if isinstance(meta, dict) else None!r})")
        decisions = [Decision(n, k, int(c)) for n, k, c in meta["decisions"]]
        ctrl = cls(decisions, meta["config"], seed, meta.get("choices"))
        state = load_tensors(folder / CONTROLLER_FILES[0])
        ctrl.task_embeddings = nn.Parameter(state.pop("task_embeddings"))
        ctrl.load_state_dict(state, strict=False)
        ctrl.tasks = list(meta["tasks"])
        ctrl.pretrained_on = list(meta.get("pretrained_on", []))
        ctrl.baselines, ctrl.spreads = dict(meta.get("baselines", {})), dict(meta.get("spreads", {}))
        ctrl.updates = int(meta.get("updates", 0))
        ctrl._new_optimizer()
        return ctrl

    def check_space(self, labels: dict[str, list], where: str = "transfer_from") -> None:
        """Raise if this controller's decisions differ from ``labels`` (naming the first decision that differs)."""
        mine = self.choice_labels
        for name in list(dict.fromkeys(list(mine) + list(labels))):
            if name not in mine:
                raise ConfigError(f"{where}: the saved controller has no decision '{name}', which this search's "
                                  f"space has (choices {labels[name]}); transfer needs the same space")
            if name not in labels:
                raise ConfigError(f"{where}: the saved controller has a decision '{name}' that this search's space "
                                  "lacks; transfer needs the same space")
            if [_norm(v) for v in mine[name]] != [_norm(v) for v in labels[name]]:
                raise ConfigError(f"{where}: decision '{name}' differs: the saved controller chooses from {mine[name]}, "
                                  f"this search from {labels[name]}; transfer needs the same space")
        if list(mine) != list(labels):
            raise ConfigError(f"{where}: the saved controller orders its decisions {list(mine)}, this search "
                              f"{list(labels)}; transfer needs the same space")


def _norm(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def _config(cfg) -> TaskControllerConfig:
    if isinstance(cfg, TaskControllerConfig):
        return cfg
    try:
        return TaskControllerConfig(**(cfg or {}))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "controller")) from None
