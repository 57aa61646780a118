"""MANAS's input-conditioned controller: an LSTM that assembles one logic expression per input.

Chen, Li, Zhu, Zhang, CIKM 2022 (arXiv 2208.11083), section 3.3, and TalonCB/MANAS ``controller.py``.
The anchors are the controller's own embeddings of the input's history items. Each step (vectorised
over the batch; every row takes the same number of steps, ``history − 1`` capped at ``max_steps``):

1. the LSTM emits logits ``C·tanh(W_op h)`` over {AND, OR}; one is sampled;
2. the LSTM reads the chosen op's embedding; additive attention ``v·tanh(W1 a + W2 h)`` over the
   anchors (shaped ``C·tanh``, used anchors at −100) picks two distinct inputs without replacement;
3. NOT or not for each chosen input, from logits ``[−l, l]`` with ``l`` its attention logit;
4. the next LSTM input is ``(a_i + a_j) / 3`` (the authors' sum over 1 + 2), and the step's LSTM output
   becomes a new anchor. Inputs are stored in canonical order (smaller anchor index first).

This satisfies the :class:`~childnet.methods.search.controller.Controller` idea of ``sample`` /
``update`` but conditions on the input (``history``) and returns tensors, not lists of choices.

Differences from the authors' code (all deliberate, for a vectorised batch): ``W1`` is applied to the
step outputs appended as anchors too (their code appends them unprojected); the second input's
log-probability is the exact without-replacement one ``log p_j − log(1 − p_i)`` (theirs sums the two
first-draw log-probabilities); the LSTM state after the op-embedding read is carried to the next step
(theirs keeps the state from before it); the entropy bonus enters the loss, not the reward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AssemblyController", "uniform_architectures"]


def _pick(logits: torch.Tensor, greedy: bool, gen) -> torch.Tensor:
    if greedy:
        return logits.argmax(-1)
    return torch.multinomial(F.softmax(logits, -1), 1, generator=gen).squeeze(1)


class AssemblyController(nn.Module):
    """LSTM controller whose decisions depend on the input's history items (see the module docstring)."""

    def __init__(self, num_items: int, hidden: int = 64, steps: int = 3, tanh_constant: float = 1.5):
        super().__init__()
        self.steps, self.c = steps, tanh_constant
        self.item = nn.Embedding(num_items, hidden)
        self.start = nn.Parameter(torch.empty(1, hidden))
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.op_emb = nn.Embedding(2, hidden)
        self.w_op = nn.Linear(hidden, 2, bias=False)
        self.w1 = nn.Linear(hidden, hidden, bias=False)
        self.w2 = nn.Linear(hidden, hidden, bias=False)
        self.v = nn.Linear(hidden, 1, bias=False)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def sample(self, history: torch.Tensor, greedy: bool = False, generator: torch.Generator | None = None):
        """Architectures (B, S, 5), their log-probabilities (B,) and entropies (B,) for ``history`` (B, n)."""
        b, n = history.shape
        dev = history.device
        rows = torch.arange(b, device=dev)
        emb = self.item(history)
        anchors, keys = list(emb.unbind(1)), self.w1(emb)
        used = torch.zeros(b, n + self.steps, dtype=torch.bool, device=dev)
        state = (emb.new_zeros(b, emb.shape[-1]), emb.new_zeros(b, emb.shape[-1]))
        inp = self.start.repeat(b, 1)
        logp, ent = emb.new_zeros(b), emb.new_zeros(b)
        arch = []
        for s in range(self.steps):
            state = self.lstm(inp, state)
            op_logits = self.c * torch.tanh(self.w_op(state[0]))
            op = _pick(op_logits, greedy, generator)
            lsm = F.log_softmax(op_logits, -1)
            logp = logp + lsm[rows, op]
            ent = ent - (lsm.exp() * lsm).sum(-1)
            state = self.lstm(self.op_emb(op), state)
            k = n + s
            att = self.v(torch.tanh(keys[:, :k] + self.w2(state[0]).unsqueeze(1))).squeeze(-1)
            att = self.c * torch.tanh(att)
            att = att.masked_fill(used[:, :k], -100.0)
            lsm = F.log_softmax(att, -1)
            ent = ent - (lsm.exp() * lsm).sum(-1)
            i = _pick(att, greedy, generator)
            att2 = att.masked_fill(F.one_hot(i, k).bool(), float("-inf"))
            j = _pick(att2, greedy, generator)
            logp = logp + lsm[rows, i] + F.log_softmax(att2, -1)[rows, j]
            li, lj = att[rows, i], att[rows, j]
            keep_logit = 2 * torch.stack([li, lj], 1)  # P(keep) = softmax([-l, l])[1] = sigmoid(2l)
            if greedy:
                keep = keep_logit > 0
            else:
                keep = torch.rand(keep_logit.shape, generator=generator, device=dev) < torch.sigmoid(keep_logit)
            logp = logp + F.logsigmoid(torch.where(keep, keep_logit, -keep_logit)).sum(1)
            pk = torch.sigmoid(keep_logit)
            ent = ent - (pk * F.logsigmoid(keep_logit) + (1 - pk) * F.logsigmoid(-keep_logit)).sum(1)
            neg = (~keep).long()
            swap = i > j
            a, bb = torch.where(swap, j, i), torch.where(swap, i, j)
            na, nb = torch.where(swap, neg[:, 1], neg[:, 0]), torch.where(swap, neg[:, 0], neg[:, 1])
            arch.append(torch.stack([op, a, bb, na, nb], 1))
            used = used.clone()
            used[rows, i] = True
            used[rows, j] = True
            stack = torch.stack(anchors, 1)
            inp = (stack[rows, i] + stack[rows, j]) / 3.0
            anchors.append(state[0])
            keys = torch.cat([keys, self.w1(state[0]).unsqueeze(1)], 1)
        return torch.stack(arch, 1), logp, ent


def uniform_architectures(b: int, n: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """``b`` architectures sampled uniformly: op, two distinct unused anchors and each NOT, per step."""
    used = torch.zeros(b, n + steps, dtype=torch.bool)
    rows = torch.arange(b)
    arch = []
    for s in range(steps):
        k = n + s
        op = torch.randint(2, (b,), generator=generator)
        noise = torch.rand(b, k, generator=generator).masked_fill(used[:, :k], -1.0)
        pair = noise.topk(2, dim=1).indices.sort(1).values
        neg = torch.randint(2, (b, 2), generator=generator)
        arch.append(torch.stack([op, pair[:, 0], pair[:, 1], neg[:, 0], neg[:, 1]], 1))
        used[rows, pair[:, 0]] = True
        used[rows, pair[:, 1]] = True
    return torch.stack(arch, 1)
