"""Text for people: unit formatting at the edge and the explanation of one GEMM estimate."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulator.hardware.spec import HardwareSpec
from simulator.kernels.families import KERNEL_FAMILIES

if TYPE_CHECKING:
    import pandas as pd


def _scaled(value: float, unit: str, prefixes) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    for factor, prefix in prefixes:
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    factor, prefix = prefixes[-1]
    return f"{value / factor:.3g} {prefix}{unit}"


_DECIMAL = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")]


def fmt_time(seconds: float) -> str:
    return _scaled(seconds, "s", [(1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n")])


def fmt_bytes(n_bytes: float) -> str:
    """Decimal bytes (GB = 1e9 B), the unit of bandwidth datasheets."""
    return _scaled(n_bytes, "B", _DECIMAL)


def fmt_flops(flops: float) -> str:
    return _scaled(flops, "FLOP", _DECIMAL)


def fmt_rate(flop_per_s: float) -> str:
    return _scaled(flop_per_s, "FLOP/s", _DECIMAL)




def explain_gemm(row: pd.Series, hw: HardwareSpec, dense_row: "pd.Series | None" = None) -> str:
    """Several lines that say where one estimate comes from."""
    m, n, k = int(row.m), int(row.n), int(row.k)
    lines = [
        f"GEMM on {hw.name} ({hw.id}): y = x.W^T, x {m}x{k} (tokens), W {n}x{k}, "
        f"{row['dtype']}, {row['format']}",
    ]
    if (row.n_eff, row.k_eff) != (row.n, row.k):
        lines.append(f"  pruned shape  W {int(row.n_eff)}x{int(row.k_eff)} (structured pruning keeps "
                     f"{row.density:.0%})")
    lines += [
        f"  kernel        {row.kernel}: {KERNEL_FAMILIES[row.kernel].description}",
        f"  work          {fmt_flops(row.flops)} dense-equivalent, {fmt_flops(row.flops_executed)} executed",
        f"  bytes         {fmt_bytes(row.bytes)} = weights {fmt_bytes(row.bytes_weight)}"
        f" + metadata {fmt_bytes(row.bytes_metadata)} + act in {fmt_bytes(row.bytes_act_in)}"
        f" + out {fmt_bytes(row.bytes_act_out)}",
        f"  intensity     {row.arithmetic_intensity_flop_per_byte:.3g} FLOP/B; ridge point "
        f"{row.ridge_point_flop_per_byte:.3g} FLOP/B at achievable rates "
        f"({row.datasheet_ridge_point_flop_per_byte:.3g} at the datasheet's, as the roofline chart draws it)",
    ]
    if row.tiles:
        lines.append(
            f"  tiles         {int(row.tile_m)}x{int(row.tile_n)} (tokens x weights): {int(row.tiles)} tiles"
            f" x split-K {int(row.split_k)} in {math.ceil(row.tiles * row.split_k / hw.units - 1e-9)} wave(s) over "
            f"{hw.units} {hw.compute.unit_name}s ({row.wave_efficiency:.0%} of {hw.compute.unit_name} slots busy across "
            f"the waves; priced as {row.waves:.3g} waves)"
        )
    why = ""
    if row.tiles and row.feed_limited:
        why = (f"; the {int(row.tile_m)}x{int(row.tile_n)} tile is limited by its operand feed from L2, "
               "not by the math")
    elif row.tiles and row.m < row.tile_m:
        why = f"; the tile pads {int(row.m)} token row(s) to {int(row.tile_m)}"
    lines += [
        f"  compute       {fmt_time(row.compute_time_s)} (floor at datasheet peak {fmt_time(row.compute_floor_s)}{why})",
        f"  memory        {fmt_time(row.memory_time_s)} (floor at datasheet bandwidth {fmt_time(row.memory_floor_s)})",
        f"  overhead      {fmt_time(row.overhead_s)} (kernel launch"
        + (", plus the sparse path's extra kernels)" if KERNEL_FAMILIES[row.kernel].sparse_extra else ")"),
        f"  time          {fmt_time(row.time_s)}: {row.bound}-bound, {fmt_rate(row.flop_per_s)} effective",
    ]
    if dense_row is not None and row['format'] != "dense":
        ratio = dense_row.time_s / row.time_s
        verdict = "faster" if ratio > 1 else "slower"
        shown = ratio if ratio >= 1 else 1 / ratio
        lines.append(f"  vs dense      dense {row['dtype']}: {fmt_time(dense_row.time_s)} "
                     f"({dense_row.bound}-bound); {row['format']} is {shown:.2f}x {verdict}")
    return "\n".join(lines)
