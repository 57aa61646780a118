"""Execution-design search of one layer on the simulated intermittent device (vectorised with numpy).

An **execution design** (Mendis, Kang, Hsiu, ACM TECS 2021, section 4; the iNAS cost model in
EMCLab-Sinica/Intermittent-aware-NAS, ``CostModel/conv_tiled.py``, ``common.py``) is tile sizes
``(Tr, Tc, Tm, Tn)`` dividing the output rows, output columns, output channels and input channels,
an inter-tile loop order (``reuse_I``: keep an input tile and loop over output-channel tiles;
``reuse_W``: keep a weight tile and loop over spatial tiles; ``reuse_O``: keep an output tile and
loop over input-channel tiles) and ``S``, the tiles run in one power cycle. Every candidate is one
row of flat numpy arrays: the whole design space of a layer is costed at once, never in a Python
loop over designs. The formulas are in :mod:`childnet.evaluate.device` (its docstring lists every
difference from the public code).

A layer is described by :class:`LayerDims`; :func:`search_layer` returns a :class:`LayerDesign`
(fastest feasible design under intermittent power, ties broken by less SRAM, plus the fastest design
under continuous power) or the reason no design is feasible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["LayerDims", "LayerDesign", "CostTable", "search_layer", "ORDERS"]

#: Inter-tile loop orders (iNAS ``filter_legal_reuseschems``); pooling has only the output-stationary one.
ORDERS = ("reuse_I", "reuse_W", "reuse_O")


@dataclass(frozen=True)
class LayerDims:
    """What the cost model needs of a layer (batch 1, channels-last tiles).

    Attributes:
        kind: ``conv`` (conv 1-D/2-D and linear), ``pool`` (max/avg window), ``reduce`` (global
            pooling: a sum over every position) or ``eltwise`` (activation / unfolded BatchNorm).
        R, C: output rows and columns (1 for linear layers and 1-D convs' columns).
        M, N: output and input channels (per group for grouped convs).
        Kh, Kw: kernel (window) size.
        stride: stride of the window.
        groups: independent groups (depthwise conv: groups = channels); costs scale by it.
        op: the scalar op of pool/eltwise layers: ``max``, ``add`` or ``muladd``.
    """

    kind: str
    R: int
    C: int
    M: int
    N: int = 1
    Kh: int = 1
    Kw: int = 1
    stride: int = 1
    groups: int = 1
    op: str = "max"


@dataclass(frozen=True)
class CostTable:
    """Per-operation cost in one unit (joules or seconds) — the same formulas give energy and time."""

    rd_m: float  # DMA FRAM -> SRAM, per element
    rd_b: float  # ... per transfer
    wr_m: float  # DMA SRAM -> FRAM, per element
    wr_b: float
    vmac_m: float  # LEA vector MAC, per element
    vmac_b: float
    add: float
    mul: float
    max: float
    reboot: float
    ovh: tuple  # addressing overheads, as ((name, cost), ...)

    def o(self, name: str) -> float:
        return dict(self.ovh)[name]

    def rd(self, n):
        return self.rd_m * n + self.rd_b

    def wr(self, n):
        return self.wr_m * n + self.wr_b

    def vmac(self, n):
        return self.vmac_m * n + self.vmac_b


@dataclass(frozen=True)
class LayerDesign:
    """The outcome of one layer's design search (all totals cover every group)."""

    feasible: bool
    reason: str | None
    design: dict | None  # Tr, Tc, Tm, Tn, order, S, sram_bytes
    latency_s: float | None  # intermittent: active + recharge over every power cycle
    energy_j: float | None
    power_cycles: float | None
    continuous_latency_s: float | None
    continuous_design: dict | None
    designs_searched: int


def _divisors(n: int, even: bool = False) -> np.ndarray:
    """1 and the divisors of ``n`` (only the even ones above 1 when ``even``; iNAS ``filter_legal_*``)."""
    d = np.arange(1, n + 1)
    keep = (n % d == 0) & ((d == 1) | (not even) | (d % 2 == 0))
    return d[keep]


def _grid(*axes: np.ndarray) -> list[np.ndarray]:
    return [a.ravel() for a in np.meshgrid(*axes, indexing="ij")]


def _recharge(e_used, eav: float, dev) -> np.ndarray:
    """Recharge time after a power cycle that used ``e_used`` J (iNAS ``CostModel/capacitor.py``)."""
    c = dev.capacitance_f
    v_after = np.sqrt(np.maximum(2 * (eav - e_used) / c + dev.v_off ** 2, 0.0))
    return -dev.resistance() * c * np.log((dev.v_on - dev.v_supply) / (v_after - dev.v_supply))


def _conv_costs(d: LayerDims, t: dict, tab: CostTable) -> dict:
    """Per-power-cycle and whole-layer (continuous) cost of conv designs ``t`` in ``tab``'s unit."""
    Tr, Tc, Tm, Tn, S, order = t["Tr"], t["Tc"], t["Tm"], t["Tn"], t["S"], t["order"]
    Tri = d.stride * Tr + d.Kh - d.stride
    Tci = d.stride * Tc + d.Kw - d.stride
    nI, nW, nO = Tri * Tci, d.Kh * d.Kw * Tm, Tr * Tc  # DMA transfers per tile (blocks of Tn, Tn, Tm)
    rdI = tab.rd(Tn) + tab.o("fd_i")
    rdW = tab.rd(Tn) + tab.o("fd_w")
    fd_o = np.choose(order, [tab.o("fd_o_ri"), tab.o("fd_o_rw"), tab.o("fd_o_ro")])
    bd_o = np.choose(order, [tab.o("bd_o_ri"), tab.o("bd_o_rw"), tab.o("bd_o_ro")])
    rdO = tab.rd(Tm) + fd_o
    is_i, is_w = order == 0, order == 1
    # fetch per power cycle, without and with the partial-sum fetch (first input-channel tile: none)
    fetch_n0 = np.where(is_i, S * nW * rdW + nI * rdI, np.where(is_w, S * nI * rdI + nW * rdW, S * (nI * rdI + nW * rdW)))
    psum = np.where(order == 2, nO * rdO, S * nO * rdO)
    comp = S * d.Kh * d.Kw * Tr * Tc * Tm * (tab.vmac(Tn) + tab.add + tab.o("psum") + tab.o("acum"))
    backup = np.where(is_i, Tr * Tc * (tab.wr(S * Tm) + bd_o), np.where(is_w, S, 1) * Tr * Tc * (tab.wr(Tm) + bd_o))
    index = tab.rd(4) + tab.wr(4)  # loop indices: 4 words fetched and backed up per power cycle
    base = tab.reboot + index + comp + backup
    # continuous power: S = 1, no reboot or index I/O; reuse decides how often each buffer is fetched
    nR, nC, nM, nN = d.R // Tr, d.C // Tc, d.M // Tm, d.N // Tn
    tiles, out_tiles = nR * nC * nM * nN, nR * nC * nM
    n_in = np.where(is_i, nR * nC * nN, tiles)
    n_w = np.where(is_w, nM * nN, tiles)
    n_psum = np.where(order == 2, 0, tiles - out_tiles)
    one = d.Kh * d.Kw * Tr * Tc * Tm * (tab.vmac(Tn) + tab.add + tab.o("psum") + tab.o("acum"))
    cont = (n_in * nI * rdI + n_w * nW * rdW + n_psum * nO * rdO + tiles * one
            + tiles * Tr * Tc * (tab.wr(Tm) + bd_o))
    return {"n0": base + fetch_n0, "ngt0": base + fetch_n0 + psum, "continuous": cont}


def _conv_space(d: LayerDims) -> dict:
    """Every legal conv design: tiles dividing the dims (Tn even for LEA), 3 orders, S dividing the loop."""
    Tr, Tc, Tm, Tn = _grid(_divisors(d.R), _divisors(d.C), _divisors(d.M), _divisors(d.N, even=True))
    nR, nC, nM, nN = d.R // Tr, d.C // Tc, d.M // Tm, d.N // Tn
    s_cands = np.unique(np.concatenate([_divisors(d.M, True), _divisors(d.R * d.C, True), _divisors(d.N, True)]))
    rows = []
    for o in range(3):  # three vectorised blocks, not a loop over designs
        idx, S = _grid(np.arange(len(Tr)), s_cands)
        iters = (nM, nR * nC, nN)[o][idx]
        ok = iters % S == 0
        rows.append((idx[ok], S[ok], np.full(int(ok.sum()), o)))
    idx, S, order = (np.concatenate(x) for x in zip(*rows))
    t = {"Tr": Tr[idx], "Tc": Tc[idx], "Tm": Tm[idx], "Tn": Tn[idx], "S": S, "order": order}
    nR, nC, nM, nN = nR[idx], nC[idx], nM[idx], nN[idx]
    t["npc"] = nR * nC * nM * nN / S
    t["n0"] = np.where(order == 2, nR * nC * nM, nR * nC * nM / S)
    Tri = d.stride * t["Tr"] + d.Kh - d.stride
    Tci = d.stride * t["Tc"] + d.Kw - d.stride
    out_buf = t["Tr"] * t["Tc"] * t["Tm"] * np.where(order == 2, 1, S)
    t["elements"] = Tri * Tci * t["Tn"] + d.Kh * d.Kw * t["Tm"] * t["Tn"] + out_buf
    return t


def _pool_space(d: LayerDims) -> dict:
    """Window pooling / elementwise: tiles (Tr, Tc, Tm), output-stationary, S channel tiles per cycle."""
    Tr, Tc, Tm = _grid(_divisors(d.R), _divisors(d.C), _divisors(d.M))
    nM = d.M // Tm
    idx, S = _grid(np.arange(len(Tr)), _divisors(d.M, True))
    ok = nM[idx] % S == 0
    idx, S = idx[ok], S[ok]
    t = {"Tr": Tr[idx], "Tc": Tc[idx], "Tm": Tm[idx], "Tn": np.ones_like(S), "S": S, "order": np.full(len(S), 2)}
    t["npc"] = (d.R // t["Tr"]) * (d.C // t["Tc"]) * (d.M // t["Tm"]) / S
    t["n0"] = t["npc"]
    Tri = d.stride * t["Tr"] + d.Kh - d.stride
    Tci = d.stride * t["Tc"] + d.Kw - d.stride
    t["elements"] = Tri * Tci * t["Tm"] + t["Tr"] * t["Tc"] * t["Tm"] * S
    return t


def _op_cost(d: LayerDims, tab: CostTable) -> float:
    if d.op == "max":
        return tab.max + tab.o("max")
    if d.op == "add":
        return tab.add + tab.o("max")
    return tab.mul + tab.add + tab.o("max")  # muladd: an unfolded BatchNorm


def _pool_costs(d: LayerDims, t: dict, tab: CostTable) -> dict:
    Tr, Tc, Tm, S = t["Tr"], t["Tc"], t["Tm"], t["S"]
    Tri = d.stride * Tr + d.Kh - d.stride
    Tci = d.stride * Tc + d.Kw - d.stride
    tile = (Tri * Tci * (tab.rd(Tm) + tab.o("fd_i")) + Tr * Tc * Tm * d.Kh * d.Kw * _op_cost(d, tab)
            + Tr * Tc * (tab.wr(Tm) + tab.o("bd_o_ro")))
    pc = tab.reboot + tab.rd(4) + tab.wr(4) + S * tile
    tiles = (d.R // Tr) * (d.C // Tc) * (d.M // Tm)
    return {"n0": pc, "ngt0": pc, "continuous": tiles * tile}


def _reduce_space(d: LayerDims) -> dict:
    """Global pooling over an R x C map: tiles (Th, Tw, Tm) of the *input*, S spatial tiles per cycle."""
    Tr, Tc, Tm = _grid(_divisors(d.R), _divisors(d.C), _divisors(d.M))
    spatial = (d.R // Tr) * (d.C // Tc)
    idx, S = _grid(np.arange(len(Tr)), _divisors(d.R * d.C, True))
    ok = spatial[idx] % S == 0
    idx, S = idx[ok], S[ok]
    t = {"Tr": Tr[idx], "Tc": Tc[idx], "Tm": Tm[idx], "Tn": np.ones_like(S), "S": S, "order": np.full(len(S), 2)}
    t["npc"] = spatial[idx] * (d.M // t["Tm"]) / S
    t["n0"] = (d.M // t["Tm"]).astype(float)  # the first cycle of each channel tile has no partial sum
    t["elements"] = t["Tr"] * t["Tc"] * t["Tm"] + t["Tm"]
    return t


def _reduce_costs(d: LayerDims, t: dict, tab: CostTable) -> dict:
    Tr, Tc, Tm, S = t["Tr"], t["Tc"], t["Tm"], t["S"]
    tile = Tr * Tc * (tab.rd(Tm) + tab.o("fd_i")) + Tr * Tc * Tm * _op_cost(d, tab)
    out = tab.wr(Tm) + tab.o("bd_o_ro")
    psum = tab.rd(Tm) + tab.o("fd_o_ro")
    n0 = tab.reboot + tab.rd(4) + tab.wr(4) + S * tile + out
    spatial, ch = (d.R // Tr) * (d.C // Tc), d.M // Tm
    return {"n0": n0, "ngt0": n0 + psum, "continuous": ch * (spatial * tile + (spatial - 1) * psum + out)}


_SPACES = {"conv": (_conv_space, _conv_costs), "pool": (_pool_space, _pool_costs),
           "eltwise": (_pool_space, _pool_costs), "reduce": (_reduce_space, _reduce_costs)}


def _pick(mask: np.ndarray, primary: np.ndarray, secondary: np.ndarray) -> int:
    """Index of the minimum of ``primary`` among ``mask`` rows, ties to the smaller ``secondary``."""
    rows = np.flatnonzero(mask)
    order = np.lexsort((secondary[rows], primary[rows]))
    return int(rows[order[0]])


def _design(t: dict, i: int, nbytes: int) -> dict:
    return {"Tr": int(t["Tr"][i]), "Tc": int(t["Tc"][i]), "Tm": int(t["Tm"][i]), "Tn": int(t["Tn"][i]),
            "order": ORDERS[int(t["order"][i])], "S": int(t["S"][i]), "sram_bytes": int(t["elements"][i]) * nbytes}


@lru_cache(maxsize=4096)
def search_layer(d: LayerDims, dev, energy: CostTable, time: CostTable) -> LayerDesign:
    """Cost every design of layer ``d`` on device ``dev``; keep the fastest feasible one.

    Feasible (iNAS ``pass_constraint_spatial`` / ``pass_constraint_atomicity``): the tile buffers fit
    ``dev.sram_bytes`` and the costliest power cycle fits the energy one charge provides. Latency =
    cycles without a partial-sum fetch x (active + recharge) + cycles with one x (active + recharge).
    """
    space, costs = _SPACES[d.kind]
    t = space(d)
    e, lat = costs(d, t, energy), costs(d, t, time)
    n0 = np.minimum(t["n0"], t["npc"])
    ngt0 = t["npc"] - n0
    e_max = np.where(ngt0 > 0, e["ngt0"], e["n0"])
    eav = dev.energy_per_cycle()
    fits_sram = t["elements"] * dev.data_bytes <= dev.sram_bytes
    fits_energy = e_max <= eav
    g = d.groups
    cont, cont_design = None, None
    if fits_sram.any():
        ci = _pick(fits_sram & (t["S"] == 1), lat["continuous"], t["elements"])
        cont, cont_design = g * float(lat["continuous"][ci]), _design(t, ci, dev.data_bytes)
    n = len(t["S"])
    if not fits_sram.any():
        need = int(t["elements"].min()) * dev.data_bytes
        reason = f"SRAM: its smallest tile needs {need:,} B, more than the {dev.sram_bytes:,} B budget"
        return LayerDesign(False, reason, None, None, None, None, None, None, n)
    ok = fits_sram & fits_energy
    if not ok.any():
        least = float(e_max[fits_sram].min())
        reason = (f"energy: its least-energy power cycle needs {least * 1e3:.3g} mJ, more than the "
                  f"{eav * 1e3:.3g} mJ one charge provides")
        return LayerDesign(False, reason, None, None, None, None, cont, cont_design, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = (n0 * (lat["n0"] + _recharge(e["n0"], eav, dev))
                 + ngt0 * (lat["ngt0"] + _recharge(e_max, eav, dev)))
    i = _pick(ok, total, t["elements"])
    energy_j = float(n0[i] * e["n0"][i] + ngt0[i] * e["ngt0"][i])
    return LayerDesign(True, None, _design(t, i, dev.data_bytes), g * float(total[i]), g * energy_j,
                       g * float(t["npc"][i]), cont, cont_design, n)
