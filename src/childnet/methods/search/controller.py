"""Controllers: what samples architectures and learns from their rewards.

The protocol is small so other searches reuse it (multitask transfer, MANAS, hardware-aware NAS):
``sample(n, condition=None)`` returns ``n`` architectures as lists of integer choices, one per
:class:`~childnet.methods.search.spaces.Decision`; ``update(samples, rewards, condition=None)`` takes
one number per sample (any reward: accuracy, minus latency, ...) and returns statistics. The samples
are passed back explicitly, so a controller holds no pending state between the two calls.

:class:`LSTMController` is the ENAS controller (Pham, Guan, Zoph, Le, Dean, 2018, arXiv 1802.03268,
section 2.2; defaults from the authors' scripts ``cifar10_macro_search.sh`` / ``..._micro_search.sh``):
an LSTM (one layer, 64 units, weights uniform in [-0.1, 0.1]) emits one categorical per decision,
autoregressively (the embedding of each choice is the next input). Logits are shaped
``C * tanh(logits / T)`` (C = ``tanh_constant``, divided by ``op_tanh_reduce`` for op decisions).
Training is REINFORCE: the reward gets an entropy bonus ``R + w_H * H``, the baseline is a moving
average ``b <- b - (1 - decay)(b - R)`` updated before use, the loss is ``-log pi(a) (R - b)`` plus
``skip_weight`` times the KL divergence between each skip probability and ``skip_target`` (macro
space), minimised by Adam with beta1 = 0 and eps = 1e-3 as in the authors' code.

Choices (documented deviations): ENAS picks skip connections and cell inputs by attention over
earlier LSTM states; here every decision reads its own logits from a head shared by decisions of the
same kind (masked to the decision's number of choices) and the LSTM input gets a learned embedding of
the decision's position. This keeps a space a flat list of decisions. The baseline starts at the mean
of the first batch of rewards (ENAS starts it at 0, which over-rewards early samples in short searches).
An optional ``condition`` vector (e.g. a task embedding) is projected and added to the first input.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ...config import Config
from .spaces import Decision

__all__ = ["Controller", "ControllerConfig", "LSTMController", "UniformController", "paper_controller_defaults"]


class Controller(Protocol):
    """What a search needs from a controller."""

    decisions: Sequence[Decision]

    def sample(self, n: int = 1, condition: torch.Tensor | None = None) -> list[list[int]]:
        """``n`` architectures, each one integer choice per decision."""
        ...

    def update(self, samples: Sequence[Sequence[int]], rewards: Sequence[float],
               condition: torch.Tensor | None = None) -> dict[str, float]:
        """Learn from one reward per sample; return statistics (reward, baseline, entropy, ...)."""
        ...


class ControllerConfig(Config):
    """The LSTM controller's hyper-parameters (ENAS defaults: macro space)."""

    hidden_size: int = Field(64, ge=1, description="LSTM units (ENAS: 64)")
    lr: float = Field(0.001, gt=0, description="Adam learning rate (ENAS: 0.001 macro, 0.0035 micro)")
    baseline_decay: float = Field(0.99, ge=0, lt=1, description="moving-average baseline decay (ENAS: 0.99)")
    entropy_weight: float = Field(1e-4, ge=0, description="weight of the entropy bonus added to the reward")
    tanh_constant: float | None = Field(1.5, gt=0, description="C of C*tanh(logits/T) (ENAS: 1.5 macro, 1.1 micro); "
                                        "null: no shaping")
    temperature: float = Field(1.0, gt=0, description="T of C*tanh(logits/T) (ENAS: none, i.e. 1)")
    op_tanh_reduce: float = Field(1.0, gt=0, description="op decisions use C / this (ENAS micro: 2.5)")
    skip_target: float = Field(0.4, gt=0, lt=1, description="target probability of a skip connection")
    skip_weight: float = Field(0.8, ge=0, description="weight of the KL penalty towards skip_target (0: off)")
    grad_clip: float | None = Field(None, gt=0, description="clip the controller's gradient norm")


def paper_controller_defaults(space: str) -> dict:
    """ENAS's controller settings for the ``macro`` or ``micro`` space (authors' search scripts)."""
    if space == "micro":
        return {"lr": 0.0035, "tanh_constant": 1.1, "op_tanh_reduce": 2.5, "skip_weight": 0.0}
    return {"lr": 0.001, "tanh_constant": 1.5, "op_tanh_reduce": 1.0, "skip_target": 0.4, "skip_weight": 0.8}


def _binary_kl(p: torch.Tensor, q: float) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))


class LSTMController(nn.Module):
    """ENAS's LSTM policy over a list of decisions, trained with REINFORCE.

    Args:
        decisions: the search space's decisions.
        cfg: hyper-parameters.
        seed: seeds the initial weights and every sample (its own generator: no global RNG).
        condition_dim: size of an optional conditioning vector (0: none).
    """

    def __init__(self, decisions: Sequence[Decision], cfg: ControllerConfig | None = None, seed: int = 0,
                 condition_dim: int = 0):
        super().__init__()
        self.decisions = tuple(decisions)
        self.cfg = cfg or ControllerConfig()
        h = self.cfg.hidden_size
        widths: dict[str, int] = {}
        for d in self.decisions:
            widths[d.kind] = max(widths.get(d.kind, 0), d.num_choices)
        self.embed = nn.ModuleDict({k: nn.Embedding(w, h) for k, w in widths.items()})
        self.heads = nn.ModuleDict({k: nn.Linear(h, w, bias=False) for k, w in widths.items()})
        self.position = nn.Embedding(len(self.decisions), h)
        self.go = nn.Parameter(torch.zeros(1, h))
        self.lstm = nn.LSTMCell(h, h)
        self.condition = nn.Linear(condition_dim, h, bias=False) if condition_dim else None
        self.generator = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for p in self.parameters():
                nn.init.uniform_(p, -0.1, 0.1, generator=self.generator)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=self.cfg.lr, betas=(0.0, 0.999), eps=1e-3)
        self.baseline: float | None = None
        self.updates = 0

    def _logits(self, hidden: torch.Tensor, d: Decision) -> torch.Tensor:
        logits = self.heads[d.kind](hidden)[:, : d.num_choices] / self.cfg.temperature
        if self.cfg.tanh_constant is not None:
            c = self.cfg.tanh_constant / (self.cfg.op_tanh_reduce if d.kind == "op" else 1.0)
            logits = c * torch.tanh(logits)
        return logits

    def _run(self, n: int, choices: torch.Tensor | None, condition: torch.Tensor | None):
        """Roll the LSTM over the decisions; sample when ``choices`` is None, else score them."""
        h = self.cfg.hidden_size
        state = (torch.zeros(n, h), torch.zeros(n, h))
        x = self.go.expand(n, h)
        if condition is not None:
            if self.condition is None:
                raise ValueError("this controller was built without condition_dim")
            x = x + self.condition(condition.reshape(1, -1).float()).expand(n, h)
        picked, log_probs, entropies, kls = [], [], [], []
        for t, d in enumerate(self.decisions):
            state = self.lstm(x + self.position.weight[t], state)
            logits = self._logits(state[0], d)
            logp = F.log_softmax(logits, -1)
            if choices is None:
                c = torch.multinomial(logp.exp(), 1, generator=self.generator).squeeze(1)
            else:
                c = choices[:, t]
            picked.append(c)
            log_probs.append(logp.gather(1, c[:, None]).squeeze(1))
            entropies.append(-(logp.exp() * logp).sum(-1))
            if d.kind == "skip":
                kls.append(_binary_kl(logp[:, 1].exp(), self.cfg.skip_target))
            x = self.embed[d.kind](c)
        kl = torch.stack(kls, 1).mean(1) if kls else torch.zeros(n)
        return torch.stack(picked, 1), torch.stack(log_probs, 1).sum(1), torch.stack(entropies, 1).sum(1), kl

    @torch.no_grad()
    def sample(self, n: int = 1, condition: torch.Tensor | None = None) -> list[list[int]]:
        """``n`` architectures drawn from the policy."""
        picked, *_ = self._run(n, None, condition)
        return picked.tolist()

    @torch.no_grad()
    def entropy(self, n: int = 32, condition: torch.Tensor | None = None) -> float:
        """Mean entropy (nats, summed over decisions) of the policy along ``n`` sampled paths."""
        return float(self._run(n, None, condition)[2].mean())

    def update(self, samples: Sequence[Sequence[int]], rewards: Sequence[float],
               condition: torch.Tensor | None = None) -> dict[str, float]:
        """One REINFORCE step on ``samples`` (one Adam step on the mean loss over the batch)."""
        if len(samples) != len(rewards) or not samples:
            raise ValueError(f"need one reward per sample (got {len(samples)} samples, {len(rewards)} rewards)")
        choices = torch.as_tensor([list(s) for s in samples], dtype=torch.long)
        _, log_prob, entropy, kl = self._run(len(samples), choices, condition)
        reward = torch.as_tensor(rewards, dtype=torch.float32) + self.cfg.entropy_weight * entropy.detach()
        if self.baseline is None:
            self.baseline = float(reward.mean())
        advantages = []
        for r in reward.tolist():
            self.baseline -= (1 - self.cfg.baseline_decay) * (self.baseline - r)
            advantages.append(r - self.baseline)
        pg = -(log_prob * torch.as_tensor(advantages)).mean()
        loss = pg + self.cfg.skip_weight * kl.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.updates += 1
        skip_rate = _skip_rate(self.decisions, choices)
        return {"reward": float(torch.as_tensor(rewards).mean()), "baseline": self.baseline,
                "entropy": float(entropy.detach().mean()), "loss": float(loss.detach()),
                "skip_kl": float(kl.detach().mean()),
                "skip_rate": skip_rate}


def _skip_rate(decisions: Sequence[Decision], choices: torch.Tensor) -> float:
    cols = [t for t, d in enumerate(decisions) if d.kind == "skip"]
    return float(choices[:, cols].float().mean()) if cols else 0.0


class UniformController:
    """Samples every decision uniformly and learns nothing (random search).

    Args:
        decisions: the search space's decisions.
        seed: seeds its own generator.
    """

    def __init__(self, decisions: Sequence[Decision], seed: int = 0):
        self.decisions = tuple(decisions)
        self.generator = torch.Generator().manual_seed(int(seed))

    def sample(self, n: int = 1, condition: torch.Tensor | None = None) -> list[list[int]]:
        """``n`` uniform architectures; drawn row by row, so ``sample(m)`` starts like ``sample(n)``."""
        sizes = torch.tensor([d.num_choices for d in self.decisions], dtype=torch.float64)
        u = torch.rand((n, len(self.decisions)), generator=self.generator, dtype=torch.float64)
        return (u * sizes).floor().long().clamp_max(sizes.long() - 1).tolist()

    def update(self, samples, rewards, condition=None) -> dict[str, float]:
        return {"reward": float(torch.as_tensor(rewards, dtype=torch.float32).mean())} if rewards else {}
