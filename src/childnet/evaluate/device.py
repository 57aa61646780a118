"""A simulated intermittently powered device: does a child finish, and how long does it take?

Battery-less sensors run on harvested energy stored in a small capacitor: the device boots when the
capacitor reaches V_on, computes until the energy of one power cycle is spent, saves its progress to
non-volatile FRAM, loses power at V_off and recharges. Cost model of iNAS (Mendis, Kang, Hsiu,
"Intermittent-Aware Neural Architecture Search", ACM TECS 2021; public code
EMCLab-Sinica/Intermittent-aware-NAS, ``iNAS/CostModel/``), on its platform: a TI MSP430FR5994 at
16 MHz with the LEA vector accelerator, q15 (2-byte) data, 2 KB of SRAM for tiles, FRAM for
everything else. Zhang (2024, arXiv 2407.14514, "Accelerate Intermittent Deep Inference") works in the
same setting, scheduling inference into power cycles (not implemented here).

**Per operation** (n elements; :data:`MSP430_COSTS`): DMA FRAM->SRAM 2.7e-8 n + 2.0e-7 J and
64 n + 424 cycles; SRAM->FRAM 2.68e-8 n + 1.93e-7 J, 64 n + 422; LEA vector MAC 5.27e-10 n + 2.04e-7 J,
1.5 n + 616; ADD 3.94e-9 J / 12 cycles, MUL 1.93e-8 / 44, DIV 4.37e-8 / 160, MAX 4.23e-9 / 14;
reboot 77.88 uJ / 70 ms. Addressing overheads are counts of ADDs and MULs per transfer or MAC.

**Per power cycle**: energy available ``E_av = 1/2 C (V_on^2 - V_off^2) margin``; after using E the
capacitor sits at ``V = sqrt(2 (E_av - E) / C + V_off^2)`` and recharges to V_on through the
harvester's resistance R in ``t = -R C ln((V_on - V_sup) / (V - V_sup))``.

**Per layer** (:mod:`childnet.evaluate._device_designs`): a power cycle runs S tiles
``(Tr, Tc, Tm, Tn)``, ``Tri = stride Tr + Kh - stride``: reboot + fetch (by loop order; cycles whose
input-channel tile index is 0 skip the partial-sum fetch) + 4 index words in + compute
``S Kh Kw Tr Tc Tm (vMAC(Tn) + ADD + overhead)`` + backup (reuse_I ``Tr Tc wr(S Tm)``, reuse_W
``S Tr Tc wr(Tm)``, reuse_O ``Tr Tc wr(Tm)``) + 4 index words out. Feasible when the buffers
``(Tri Tci Tn + Kh Kw Tm Tn + Tr Tc Tm S') x 2 B`` fit the SRAM budget (S' = S, or 1 for reuse_O) and
the costliest cycle fits E_av. Layer latency = power cycles x (active + recharge); the model's is the
sum over layers. The fastest feasible design per layer is kept (ties: less SRAM).

Differences from the public code (read at commit 18bb84e; formulas re-derived, no code copied):

1. Its latency constants for the output fetch / backup addressing overheads (``L_FD_O_*``,
   ``L_BD_O_*`` in ``plat_energy_costs.py``) are built from the *energy* constants (joules used as
   seconds) — a bug; here every overhead's time is its ADD/MUL count x 12/44 cycles.
2. Its latency counts for two overheads differ from its energy counts (weight fetch 9 vs 10 MULs,
   partial-sum compute 5 vs 10 MULs); one count per overhead here (the energy model's).
3. Pooling: it counts one compare per output; here ``Kh Kw`` compares (or adds) per output, and S
   tiles' outputs are backed up (it backs up one). Global pooling accumulates partial sums across
   power cycles (fetch/backup of Tm sums); it tiles the input the same way. Dividing by H W is folded
   into the next layer's weights.
4. Layers it rejects (stride > 1, non-square maps, grouped/depthwise convs) are modelled: stride via
   ``Tri``, a grouped conv as ``groups`` independent convs. Padding is not charged. Dilated convs are
   "not modelled".
5. BatchNorm right after a conv/linear is folded into it and an activation right after one is fused
   into its output backup (free, as in iNAS whose convs carry their ReLU); elsewhere they cost one
   fetch, op and write-back per element. Functional ops inside ``forward`` (residual additions,
   ``F.relu``) are invisible to module hooks and cost nothing here.
6. Continuous power (the HW-NAS baseline): the fastest SRAM-feasible design with S = 1, no reboot or
   index I/O per tile (as its ``explore_contpow.py``), plus one reboot per inference (its
   ``est_cost_onetime_reboot``, which its explorer leaves commented out: +70 ms here).
7. SRAM budget 2,048 B (the issue); its default settings file has 3,696 B. R defaults to its CIFAR
   calibration for 1 / 5 / 10 mF (52 / 24 / 22 ohm), linear in between, the nearest outside.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import Field, ValidationError, model_validator
from torch import nn

from .._base import Config, format_validation_error
from ..errors import ConfigError
from ._device_designs import CostTable, LayerDims, search_layer

__all__ = ["DeviceConfig", "DeviceCost", "MSP430_COSTS", "device_cost", "device_config_from", "op_energy",
           "op_cycles", "energy_per_power_cycle", "recharge_time", "layer_dims", "cost_tables"]


@dataclass(frozen=True)
class OpCosts:
    """Measured costs of one MSP430FR5994 operation: energy (J) and clock cycles, linear in n elements."""

    energy_per_element: float
    energy_fixed: float
    cycles_per_element: float
    cycles_fixed: float


#: iNAS ``CostModel/microbench_measurements.py`` (linear fits of oscilloscope / cycle-counter
#: measurements on the MSP430FR5994 at 16 MHz); reboot from ``plat_energy_costs.py`` (``E_RB``, ``L_RB``).
MSP430_COSTS: dict[str, OpCosts] = {
    "dma_read": OpCosts(2.7e-08, 2.0e-07, 64.0, 424.0),  # FRAM -> SRAM
    "dma_write": OpCosts(2.6815e-08, 1.9336e-07, 64.00083, 422.22773),  # SRAM -> FRAM
    "vmac": OpCosts(5.27308646249e-10, 2.04412689725e-07, 1.5, 616.0),  # LEA vector MAC of n elements
    "add": OpCosts(0.0, 3.935538461538471e-09, 0.0, 12.0),
    "mul": OpCosts(0.0, 1.9253346153846146e-08, 0.0, 44.0),
    "div": OpCosts(0.0, 4.373834615384616e-08, 0.0, 160.0),
    "max": OpCosts(0.0, 4.228153846153846e-09, 0.0, 14.0),
}
REBOOT_ENERGY_J = 77.88e-6  # iNAS plat_energy_costs.py E_RB (oscilloscope)
REBOOT_SECONDS = 0.07  # iNAS plat_energy_costs.py L_RB: 70 ms

#: Addressing overheads as (ADDs, MULs) per transfer / MAC, counted by iNAS in the compiled assembly
#: (``plat_energy_costs.py``, the energy model's counts): fd = fetch, bd = backup, o_ri/o_rw/o_ro =
#: outputs under reuse_I / reuse_W / reuse_O; psum/acum = per vector MAC; max = per compare.
OVERHEAD_COUNTS = {"fd_i": (7, 5), "fd_w": (8, 9), "fd_o_ri": (7, 5), "fd_o_rw": (7, 4), "fd_o_ro": (7, 4),
                   "bd_o_ri": (9, 8), "bd_o_rw": (11, 9), "bd_o_ro": (7, 5), "psum": (7, 5), "acum": (3, 3),
                   "max": (2, 1)}

#: iNAS CIFAR calibration of the harvester's equivalent resistance (ohm) per capacitance (F).
R_CALIBRATION = ((1e-3, 52.0), (5e-3, 24.0), (10e-3, 22.0))


def op_energy(op: str, n=1):
    """Energy (J) of one ``op`` on ``n`` elements (``dma_read``, ``dma_write``, ``vmac``, ``add``, ...)."""
    c = MSP430_COSTS[op]
    return c.energy_per_element * n + c.energy_fixed


def op_cycles(op: str, n=1):
    """Clock cycles of one ``op`` on ``n`` elements."""
    c = MSP430_COSTS[op]
    return c.cycles_per_element * n + c.cycles_fixed


class DeviceConfig(Config):
    """The simulated device (defaults: iNAS's MSP430FR5994 setting with a 5 mF capacitor)."""

    clock_hz: float = Field(16e6, gt=0, description="CPU clock, Hz (MSP430FR5994: 16 MHz)")
    data_bytes: int = Field(2, ge=1, le=8, description="bytes per value (q15: 2)")
    capacitance_f: float = Field(5e-3, gt=0, le=10.0, description="energy-buffer capacitor, farad (iNAS: 1, 5, 10 mF)")
    v_on: float = Field(2.99, gt=0, description="voltage at which the device boots, V (iNAS: 2.99)")
    v_off: float = Field(2.8, gt=0, description="voltage at which it browns out, V (iNAS: 2.8)")
    v_supply: float = Field(3.0, gt=0, description="harvester supply voltage, V (iNAS: 3.0)")
    margin: float = Field(0.55, gt=0, le=1, description="usable fraction of a charge's energy (iNAS: 0.55)")
    resistance_ohm: float | None = Field(None, gt=0, description="harvester resistance, ohm (default: iNAS's "
                                         "calibration 52 / 24 / 22 for 1 / 5 / 10 mF, interpolated)")
    sram_bytes: int = Field(2048, ge=1, description="SRAM for tile buffers, bytes (iNAS: 2,048)")

    @model_validator(mode="after")
    def _check(self):
        if self.v_on <= self.v_off:
            raise ValueError(f"v_on must be greater than v_off = {self.v_off} V (got v_on = {self.v_on} V)")
        if self.v_supply <= self.v_on:
            raise ValueError(f"v_supply must be greater than v_on = {self.v_on} V, or the capacitor never "
                             f"recharges (got v_supply = {self.v_supply} V)")
        if self.sram_bytes < self.data_bytes:
            raise ValueError(f"sram_bytes must hold at least one {self.data_bytes}-byte element, i.e. be "
                             f">= {self.data_bytes} (got {self.sram_bytes})")
        return self

    def resistance(self) -> float:
        """The harvester's resistance: the field, or iNAS's calibration for this capacitance."""
        if self.resistance_ohm is not None:
            return self.resistance_ohm
        cs, rs = zip(*R_CALIBRATION)
        return float(np.interp(self.capacitance_f, cs, rs))

    def energy_per_cycle(self) -> float:
        return energy_per_power_cycle(self)


def energy_per_power_cycle(cfg: DeviceConfig) -> float:
    """Usable energy of one charge: 1/2 C (V_on^2 - V_off^2) x margin (iNAS ``capacitor.py``)."""
    return 0.5 * cfg.capacitance_f * (cfg.v_on ** 2 - cfg.v_off ** 2) * cfg.margin


def recharge_time(cfg: DeviceConfig, energy_used):
    """Seconds to recharge to V_on after a power cycle that used ``energy_used`` J (RC charging)."""
    eav = energy_per_power_cycle(cfg)
    v_after = np.sqrt(2 * (eav - np.asarray(energy_used, dtype=float)) / cfg.capacitance_f + cfg.v_off ** 2)
    return -cfg.resistance() * cfg.capacitance_f * np.log((cfg.v_on - cfg.v_supply) / (v_after - cfg.v_supply))


def cost_tables(cfg: DeviceConfig) -> tuple[CostTable, CostTable]:
    """The per-operation costs in joules and in seconds (cycles / clock)."""
    def table(kind: str) -> CostTable:
        if kind == "energy":
            get, reboot = (lambda op: (MSP430_COSTS[op].energy_per_element, MSP430_COSTS[op].energy_fixed)), REBOOT_ENERGY_J
        else:
            get = lambda op: (MSP430_COSTS[op].cycles_per_element / cfg.clock_hz,  # noqa: E731
                              MSP430_COSTS[op].cycles_fixed / cfg.clock_hz)
            reboot = REBOOT_SECONDS
        add, mul = get("add")[1], get("mul")[1]
        ovh = tuple((k, a * add + m * mul) for k, (a, m) in OVERHEAD_COUNTS.items())
        return CostTable(*get("dma_read"), *get("dma_write"), *get("vmac"), add, mul, get("max")[1], reboot, ovh)
    return table("energy"), table("time")


# ---------------------------------------------------------------- layers of a model

FREE = (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.Hardswish,
               nn.ELU, nn.PReLU)
POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)
ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[-1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _map(shape: tuple) -> tuple[int, int, int]:
    """(channels, rows, cols) of an activation of shape (1, C[, H[, W]])."""
    s = list(shape[1:]) + [1, 1]
    return int(s[0]), int(s[1]), int(s[2])


def _dims(m: nn.Module, x: tuple, y: tuple, prev: str | None) -> LayerDims | str | None:
    """The cost-model view of one module call; None = free; a string = why it is not modelled."""
    name = type(m).__name__
    if isinstance(m, FREE):
        return None
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        kh, kw = _pair(m.kernel_size) if isinstance(m, nn.Conv2d) else (m.kernel_size[0], 1)
        sh, sw = _pair(m.stride)
        if any(d != 1 for d in _pair(m.dilation)) or (isinstance(m, nn.Conv2d) and sh != sw):
            return f"{name} with dilation or unequal strides"
        (_, _, _), (co, r, c) = _map(x), _map(y)
        g = m.groups
        return LayerDims("conv", r, c, co // g, m.in_channels // g, kh, kw, sh, g)
    if isinstance(m, nn.Linear):
        rows = math.prod(y[1:-1]) if len(y) > 2 else 1
        return LayerDims("conv", rows, 1, m.out_features, m.in_features)
    if isinstance(m, NORMS) and prev == "conv":
        return None  # folded into the conv / linear before it
    if isinstance(m, ACTIVATIONS) and prev in ("conv", "folded"):
        return None  # fused into the output backup of the layer before it
    if isinstance(m, NORMS + ACTIVATIONS):
        ch, r, c = _map(y)
        return LayerDims("eltwise", r, c, ch, op="muladd" if isinstance(m, NORMS) else "max")
    if isinstance(m, POOLS + ADAPTIVE):
        (ch, h, w), (_, r, c) = _map(x), _map(y)
        op = "max" if "Max" in name else "add"
        if isinstance(m, ADAPTIVE):
            if r == 1 and c == 1:
                return LayerDims("reduce", h, w, ch, op=op)
            kh, kw = h // r, w // c
            if h % r or w % c or (w > 1 and kh != kw):
                return f"{name} to a size that does not divide the input evenly"
            return LayerDims("pool", r, c, ch, Kh=kh, Kw=kw, stride=kh, op=op)
        one_d = isinstance(m, (nn.MaxPool1d, nn.AvgPool1d))
        kh, kw = (_pair(m.kernel_size)[0], 1) if one_d else _pair(m.kernel_size)
        sh, sw = (_pair(m.stride)[0], 1) if one_d else _pair(m.stride)
        if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)) and any(d != 1 for d in _pair(m.dilation)):
            return f"{name} with dilation"
        if not one_d and sh != sw:
            return f"{name} with unequal strides"
        if kh == h and kw == w and r == 1 and c == 1:
            return LayerDims("reduce", h, w, ch, op=op)
        return LayerDims("pool", r, c, ch, Kh=kh, Kw=kw, stride=sh, op=op)
    return name


@torch.no_grad()
def layer_dims(model: nn.Module, input_shape: tuple) -> list[tuple[str, str, Any]]:
    """Every leaf-module call of a batch-1 forward pass: ``(name, type, LayerDims | None | reason)``.

    Shapes come from forward hooks on a zero input of shape ``(1, *input_shape)``; a module called
    twice appears twice. A string in the third place says why that module is not modelled.
    """
    calls: list[tuple[str, nn.Module, tuple, tuple]] = []
    hooks = []
    for name, m in model.named_modules():
        if not any(True for _ in m.children()):
            def hook(mod, args, out, name=name):
                x = args[0] if args and isinstance(args[0], torch.Tensor) else None
                ok = x is not None and isinstance(out, torch.Tensor)
                calls.append((name, mod, tuple(x.shape) if ok else (), tuple(out.shape) if ok else ()))
            hooks.append(m.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        dummy = torch.zeros((1, *input_shape), device=param.device if param is not None else "cpu")
        model(dummy)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    out, prev = [], None
    for name, m, x, y in calls:
        if not x:
            out.append((name, type(m).__name__, f"{type(m).__name__} (non-tensor input or output)"))
            continue
        d = _dims(m, x, y, prev)
        if isinstance(d, LayerDims):
            prev = "conv" if d.kind == "conv" else d.kind
        elif d is None and isinstance(m, NORMS):
            prev = "folded"
        elif d is None and isinstance(m, ACTIVATIONS + FREE):
            pass
        out.append((name, type(m).__name__, d))
    return out


# ---------------------------------------------------------------- the whole model


@dataclass
class DeviceCost:
    """A child on the simulated device (``None`` latencies: not feasible / not modelled)."""

    status: str  # "ok", "infeasible" or "not modelled: <layer type>"
    feasible: bool
    reason: str | None = None
    latency_s: float | None = None  # intermittent power, recharges included
    continuous_latency_s: float | None = None
    energy_j: float | None = None
    power_cycles: float | None = None
    layers: list = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def modelled(self) -> bool:
        return not self.status.startswith("not modelled")

    def metrics(self) -> dict[str, Any]:
        """The evaluation columns: ``device_feasible`` is 1/0 so its mean over seeds is a fraction."""
        out: dict[str, Any] = {"device_status": self.status}
        if self.modelled:
            out.update(device_feasible=int(self.feasible), device_latency_s=self.latency_s,
                       device_energy_j=self.energy_j, device_power_cycles=self.power_cycles,
                       device_continuous_latency_s=self.continuous_latency_s)
        return {k: v for k, v in out.items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def device_cost(model: nn.Module, input_shape: tuple, cfg: DeviceConfig | None = None, *,
                kind: str = "classification") -> DeviceCost:
    """Run ``model`` (batch 1) on the simulated device: feasibility, latencies, energy, designs per layer.

    ``kind``: the task's kind; a ranking task's inputs (user, history, candidates) are no array the device
    model can feed, so such a model is reported as not modelled without running it.
    Never raises for a model it cannot cost: the result's status is then ``"not modelled: <type>"``.
    """
    cfg = cfg or DeviceConfig()
    conf = cfg.model_dump() | {"resistance_used_ohm": cfg.resistance(), "energy_per_cycle_j": cfg.energy_per_cycle()}
    if kind == "ranking":
        return DeviceCost("not modelled: ranking inputs (user, history, candidates)", False, config=conf)
    if not input_shape or not all(isinstance(s, int) and s > 0 for s in input_shape):
        return DeviceCost(f"not modelled: inputs of shape {tuple(input_shape)} (token ids)", False, config=conf)
    try:
        calls = layer_dims(model, tuple(input_shape))
    except Exception as err:  # a model that cannot run on a dummy input is reported, never raised
        return DeviceCost(f"not modelled: forward pass failed ({type(err).__name__})", False, config=conf)
    energy, time = cost_tables(cfg)
    layers, reason = [], None
    for name, kind, d in calls:
        if isinstance(d, str):
            return DeviceCost(f"not modelled: {d}", False, config=conf)
        if d is None:
            continue
        res = search_layer(d, cfg, energy, time)
        layers.append({"name": name, "type": kind, "dims": asdict(d), "feasible": res.feasible, "reason": res.reason,
                       "design": res.design, "latency_s": res.latency_s, "energy_j": res.energy_j,
                       "power_cycles": res.power_cycles, "continuous_latency_s": res.continuous_latency_s,
                       "continuous_design": res.continuous_design, "designs_searched": res.designs_searched})
        if not res.feasible and reason is None:
            reason = f"layer '{name}' ({kind}): {res.reason}"
    cont = [lay["continuous_latency_s"] for lay in layers]
    cont_total = None if any(c is None for c in cont) else sum(cont) + REBOOT_SECONDS
    if reason is not None:
        return DeviceCost("infeasible", False, reason, continuous_latency_s=cont_total, layers=layers, config=conf)
    return DeviceCost("ok", True, None, sum(lay["latency_s"] for lay in layers), cont_total,
                      sum(lay["energy_j"] for lay in layers), sum(lay["power_cycles"] for lay in layers),
                      layers, conf)


def device_config_from(evaluate: dict | None, where: str = "evaluate.device") -> DeviceConfig | None:
    """The device an experiment's ``evaluate`` mapping (or typed config) asks for (``device: false`` -> None).

    Default: on, with the default :class:`DeviceConfig`.

    The one place ``evaluate.device`` is parsed: the experiment validation and the runner both call it.
    Raises :class:`~childnet.errors.ConfigError` naming the field and the accepted range.
    """
    if evaluate is not None and not isinstance(evaluate, dict):  # a typed evaluate config: read its field
        evaluate = {"device": getattr(evaluate, "device", True)}
    raw = (evaluate or {}).get("device", True)
    if raw is False:
        return None
    if raw is True or raw is None:  # None: unset (e.g. a typed config's default) -> the default device
        return DeviceConfig()
    if isinstance(raw, DeviceConfig):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected true, false or a mapping of device fields "
                          f"({', '.join(DeviceConfig.model_fields)}) (got {raw!r})")
    try:
        return DeviceConfig(**raw)
    except ValidationError as err:
        lines = format_validation_error(err, where)
        accepted = ", ".join(DeviceConfig.model_fields)
        raise ConfigError([ln + (f"; device fields: {accepted}" if "unknown field" in ln else "") for ln in lines]) from None
