"""The optimised CONV_2D and DEPTHWISE_CONV_2D kernels: one static function per layer with every
shape baked in, built from the inline blocks of engine/kernels/tl_opt.h.

CONV_2D goes two output pixels by two channels a step (tl_gemm_2px): each pixel's window, or the
pixel itself when pointwise, widened to int16 pairs in scratch, the weights packed by channel
pairs, int8 words or int16 pairs ("wide"). DEPTHWISE_CONV_2D copies each input channel, padded,
into a scratch plane and computes two outputs a step (two rows by two columns at stride 1) with
SMLAD on pairs of taps; the schedule of which taps pair up is worked out here per kernel width and
stride."""
from __future__ import annotations

import numpy as np

from engine.codegen.context import EmitContext
from engine.codegen.geometry import Geometry
from engine.codegen.layer import Layer
from engine.codegen.literals import c_int
from engine.codegen.packing import pack_gemm, pair_literal
from engine.codegen.requant import (
    RQ_BASE,
    RQ_CHOICES,
    RQ_EVEN,
    RQ_EVEN_ZP,
    RQ_SIGNED_CHOICE,
    RQ_SPLIT_CHOICE,
    requant_mode,
    rq_rows,
    rq_tags,
    split_modes,
    split_rows,
)
from engine.codegen.variants import tags
from engine.ir import Graph, Op
from engine.ops.conv.prepare import ConvParams
from engine.ops.conv.shapes import ConvShape, DepthwiseShape, conv_shape
from engine.ops.quant_params import zero_point_of
from engine.ops.weighted import bias_data, clamped
from engine.overlap import OverlapRule

FUSED_STEPS = 32  # TL_FUSED_STEPS of tl_opt.h: longer products loop in the fused assembly block
# Instructions that int16 ("wide") weights save per multiply-accumulate against int8 weights
# widened in the loop by SXTB16. Measured under QEMU's mps2-an500 (Cortex-M7): MCUNet's F746 model
# (CONV_2D only) on qemu-h743, where all its int16 copies fit, ran 117,569,080 instructions with
# every candidate int16 and 130,811,200 with none, over 56.2 M multiply-accumulates. The inner
# loop alone accounts for 3/16.
WIDE_SAVING_PER_MAC = 0.236

CONV_CHOICES = ("window", "pointwise-ascending", "pointwise-descending", "int8-weights", "int16-weights",
                "odd-pixels", "explicit-padding", "window-inside-input", "patch-shared", "output-over-input", "clamped",
                "long-product", "ragged-depth", *RQ_CHOICES, RQ_SIGNED_CHOICE)
DEPTHWISE_CHOICES = ("two-rows", "one-row", "odd-columns", "odd-rows", "multiplier", "pair-taps", "single-taps",
                     "explicit-padding", "window-inside-input", "patch-shared", "output-over-input", "clamped", *RQ_CHOICES,
                     RQ_SIGNED_CHOICE, RQ_SPLIT_CHOICE)


def conv_wide_weights(graph: Graph, op: Op) -> tuple[int, float] | None:
    """The flash int16 weights cost beyond int8, and the instructions they save."""
    shape = conv_shape(graph, op)
    if not shape.optimizable:
        return None
    extra, macs = shape.co * shape.k4 * 4, shape.oh * shape.ow * shape.co * shape.kh * shape.kw * shape.ci
    return extra, WIDE_SAVING_PER_MAC * macs


def optimized_conv(g: EmitContext, position: int, op: Op, shape: ConvShape, params: ConvParams, detail: str,
                   rule: OverlapRule | None) -> Layer:
    """The layer as a static function of tl_gemm_2px steps, and its variant."""
    mults, shifts, lo, hi = list(params.multipliers), list(params.shifts), params.output_min, params.output_max
    body, geometry = _conv_body(g, position, op, shape, mults, shifts, lo, hi)
    wide = position in g.wide
    how = "two pixels x two channels a step, " + ("int16 weights" if wide else "int8 weights")
    if rule is not None:
        how += f", output over its input ({rule.kind}, {'descending' if shape.co > shape.ci else 'ascending'})"
    order = ("pointwise-descending" if shape.co > shape.ci else "pointwise-ascending") if shape.pointwise else "window"
    variant = tags("conv", order, "int16-weights" if wide else "int8-weights", *rq_tags(requant_mode(mults, shifts)),
                   (shape.oh * shape.ow) % 2 and "odd-pixels", op.attrs["padding"] == "EXPLICIT" and "explicit-padding",
                   min(shape.pt, shape.pl) < 0 and "window-inside-input", shape.shared is not None and "patch-shared",
                   rule is not None and "output-over-input", clamped(lo, hi) and "clamped", shape.k4 > FUSED_STEPS and "long-product",
                   (shape.kh * shape.kw * shape.ci) % 4 and "ragged-depth")
    args = [*g.tensor_args(op), ("uint8_t *room", g.room(position, op, shape.scratch)), *geometry]
    return Layer(f"{detail}; {how}", [g.function(position, body, args)], variant)


def optimized_depthwise(g: EmitContext, position: int, op: Op, shape: DepthwiseShape, params: ConvParams,
                        detail: str, rule: OverlapRule | None) -> Layer:
    """The layer as a static function over padded channel planes, and its variant."""
    mults, shifts, lo, hi = list(params.multipliers), list(params.shifts), params.output_min, params.output_max
    body, geometry = _depthwise_body(g, position, op, shape, mults, shifts, lo, hi)
    how = "channel planes, two outputs a step"
    if rule is not None:
        how += f", output over its input ({rule.kind})"
    kinds = {e[0] for ops in _depthwise_schedule(shape.kw, shape.sw) for e in ops}
    variant = tags("dw", "two-rows" if shape.two_rows else "one-row", shape.ow % 2 and "odd-columns",
                   shape.two_rows and shape.oh % 2 and "odd-rows", shape.mult > 1 and "multiplier",
                   "pair" in kinds and "pair-taps", "single" in kinds and "single-taps",
                   *_depthwise_rq_tags(mults, shifts), op.attrs["padding"] == "EXPLICIT" and "explicit-padding",
                   min(shape.pt, shape.pl) < 0 and "window-inside-input", shape.shared is not None and "patch-shared",
                   rule is not None and "output-over-input", clamped(lo, hi) and "clamped")
    args = [*g.tensor_args(op), ("uint8_t *room", g.room(position, op, shape.scratch)), *geometry]
    return Layer(f"{detail}; {how}", [g.function(position, body, args)], variant)


def _depthwise_rq_tags(mults: list[int], shifts: list[int]) -> tuple[str, ...]:
    """The requantisation choices of a depthwise layer: its mode, or its two groups' (split_modes)."""
    split = split_modes(mults, shifts)
    if split is None:
        return rq_tags(requant_mode(mults, shifts))
    return (*rq_tags(split[0]), *rq_tags(split[1]), RQ_SPLIT_CHOICE)


def _conv_geometry(shape: ConvShape) -> Geometry:
    return Geometry(dict(in_h=shape.h, in_w=shape.w, out_w=shape.ow, pad_t=shape.pt, pad_l=shape.pl,
                         pixels=shape.oh * shape.ow), shape.shared is not None)


def _conv_body(g: EmitContext, position: int, op: Op, shape: ConvShape, mults: list[int], shifts: list[int],
               lo: int, hi: int) -> list[str]:
    x, w, y = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])
    wide = position in g.wide
    weights = np.asarray(w.data, dtype=np.int64).reshape(shape.co, -1)
    kind = "int16 pairs" if wide else "int8 words"
    wname = g.int32_array(f"op{position}_w", pack_gemm(weights, 2, wide), f"op {op.index}: weights, {kind}, channel pairs")
    rq, mode = rq_rows(bias_data(g.graph, op, shape.co), mults, shifts, zero_point_of(y))
    rqname = g.int32_array(f"op{position}_rq", rq, f"op {op.index}: per channel bias, multiplier, rounding, shift")
    co, ci, k4, n = shape.co, shape.ci, shape.k4, shape.oh * shape.ow
    geo = _conv_geometry(shape)
    pixels = geo["pixels"]
    off2 = pair_literal(-zero_point_of(x))
    tail = f"{mode}, {c_int(zero_point_of(y))}, {lo}, {hi}"

    def gemm(a: str, b: str, store_b: str) -> str:
        return f"tl_gemm_2px(xq, {wname}, {int(wide)}, {rqname}, {k4}, {co}, {a}, {store_b}, {tail});"

    body = ["int32_t *xq = (int32_t *)room;", "int p;"]
    if shape.pointwise:
        # Two pixels read, then written; descending when the output is wider (in-place safe).
        step = ["    tl_expand(in + p * {ci}, {ci}, xq, 4, {off2});".format(ci=ci, off2=off2),
                "    tl_expand(in + (p + 1) * {ci}, {ci}, xq + 2, 4, {off2});".format(ci=ci, off2=off2),
                "    " + gemm(f"out + p * {co}", f"out + (p + 1) * {co}", "1")]
        single = [f"tl_expand(in + {{p}} * {ci}, {ci}, xq, 4, {off2});", gemm(f"out + {{p}} * {co}", "out", "0")]
        last = "(pixels - 1)" if geo.shared else f"{n - 1}"
        if co > ci:
            first = "pixels - 2" if geo.shared else f"{n - 2}"
            body += [f"for (p = {first}; p >= 0; p -= 2) {{", *step, "}"]
            body += geo.when(bool(n % 2), "pixels & 1", [line.replace("{p}", "0") for line in single])
        else:
            body += [f"for (p = 0; p + 1 < {pixels}; p += 2) {{", *step, "}"]
            body += geo.when(bool(n % 2), "pixels & 1", [line.replace("{p}", last) for line in single])
        return geo.bind(g, position, op, body)
    k = shape.kh * shape.kw * ci
    window = (f"tl_window(in, {geo['in_h']}, {geo['in_w']}, {ci}, {shape.kh}, {shape.kw}, oy * {shape.sh} - {geo['pad_t']}, "
              f"ox * {shape.sw} - {geo['pad_l']}, {zero_point_of(x)}, win);")
    advance = f"if (++ox == {geo['out_w']}) {{ ox = 0; ++oy; }}"
    body += [f"int8_t *win = (int8_t *)(xq + {4 * k4});", "int oy = 0, ox = 0;", f"for (p = 0; p < {pixels}; p += 2) {{",
             f"    {window}", f"    tl_expand(win, {k}, xq, 4, {off2});", f"    {advance}"]
    second = [window, f"tl_expand(win, {k}, xq + 2, 4, {off2});", advance]
    if n % 2 or geo.shared:
        body += [f"    if (p + 1 < {pixels}) {{", *("        " + line for line in second), "    }",
                 "    " + gemm(f"out + p * {co}", f"out + (p + 1) * {co}", f"p + 1 < {pixels}")]
    else:
        body += [*("    " + line for line in second), "    " + gemm(f"out + p * {co}", f"out + (p + 1) * {co}", "1")]
    body.append("}")
    return geo.bind(g, position, op, body)


def _depthwise_schedule(kw: int, sw: int) -> list[list[tuple]]:
    """The multiply-accumulates of one kernel row for the two outputs of a pair, whose window
    starts at plane byte o * stride (o = 0, 1) of words loaded from the pair's first byte on.
    Column c is byte c % 4 of word c // 4: SXTAB16 gives e = (byte 0, byte 2), its ROR #8 form
    o = (byte 1, byte 3). Taps j and j+2 in one register go through one SMLAD ("pair"); the
    others through one SMLAxy each ("single"). Entries: (kind, tap, register e|o, word, half)."""
    schedule = []
    for o in (0, 1):
        ops, used = [], set()
        for j in range(kw):
            if j in used:
                continue
            t, lane = divmod(o * sw + j, 4)
            if lane < 2 and j + 2 < kw and j + 2 not in used:
                ops.append(("pair", j, "eo"[lane], t, "b"))
                used.update((j, j + 2))
            else:
                ops.append(("single", j, "eo"[lane % 2], t, "bt"[lane // 2]))
                used.add(j)
        schedule.append(ops)
    return schedule


def _depthwise_body(g: EmitContext, position: int, op: Op, shape: DepthwiseShape, mults: list[int],
                    shifts: list[int], lo: int, hi: int) -> list[str]:
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    co = shape.c * shape.mult
    # Each channel plane is requantised in one mode, a literal: the layer's, or, where a few channels
    # need a slow mode (split_modes), the mode of the channel's group, the rows loop written once for each.
    split = split_modes(mults, shifts)
    if split is None:
        rq, mode = rq_rows(bias_data(g.graph, op, co), mults, shifts, zero_point_of(y), with_h=False)
        modes, what = (mode,), "bias, multiplier, shift"
    else:
        rq = split_rows(bias_data(g.graph, op, co), mults, shifts, zero_point_of(y), split)
        modes, what = split[:2], "bias, multiplier, shift, 1 in the fast group"
    rqname = g.int32_array(f"op{position}_rq", rq, f"op {op.index}: per channel {what}")
    wname = g.const_array(op.inputs[1])
    width, rows = shape.width, shape.rows
    schedule = _depthwise_schedule(shape.kw, shape.sw)
    pair_taps = sorted({e[1] for ops in schedule for e in ops if e[0] == "pair"})
    single_taps = sorted({e[1] for ops in schedule for e in ops if e[0] == "single"})

    def weight(r: int, j: int) -> str:
        return f"wk[{(r * shape.kw + j) * co}]"

    # Taps no pair register holds go two to a register, (bottom, top).
    loose = [(r, j) for r in range(shape.kh) for j in single_taps if j not in pair_taps and j - 2 not in pair_taps]
    slots = {tap: (f"s{i // 2}", "bt"[i % 2]) for i, tap in enumerate(loose)}

    def single_reg(r: int, j: int) -> tuple[str, str]:
        if j in pair_taps:
            return f"p{r}_{j}", "b"
        if j - 2 in pair_taps:
            return f"p{r}_{j - 2}", "t"
        return slots[(r, j)]

    used_regs: set[str] = set()

    def step(outputs: tuple[tuple[int, int], ...]) -> list[str]:
        """The multiply-accumulates of outputs (dy, o): output row dy (0, or 1 for the second of a
        row pair at stride 1) and column o of the pair. Each plane row is loaded and widened once
        for every output that reads it (row r of the kernel for output row dy is plane row
        r + dy); accumulators are a{dy}{o}."""
        lines = []
        for ir in range(shape.kh + max(dy for dy, _ in outputs)):
            users = [(dy, o, ir - dy) for dy, o in outputs if 0 <= ir - dy < shape.kh]
            needed: dict[int, set[str]] = {}
            for _, o, _ in users:
                for e in schedule[o]:
                    needed.setdefault(e[3], set()).add(e[2])
            for t in sorted(needed):
                lines.append(f"const uint32_t v{ir}_{t} = tl_ld32(p + {ir * width + 4 * t});")
                if "e" in needed[t]:
                    lines.append(f"const int32_t e{ir}_{t} = tl_sxtab16(off2, v{ir}_{t});")
                if "o" in needed[t]:
                    lines.append(f"const int32_t o{ir}_{t} = tl_sxtab16_r8(off2, v{ir}_{t});")
            for dy, o, r in users:
                acc = f"a{dy}{o}"
                for kind, j, reg, t, half in schedule[o]:
                    operand = f"{reg}{ir}_{t}"
                    if kind == "pair":
                        used_regs.add(f"p{r}_{j}")
                        lines.append(f"{acc} = tl_smlad({operand}, p{r}_{j}, {acc});")
                    else:
                        wreg, whalf = single_reg(r, j)
                        used_regs.add(wreg)
                        lines.append(f"{acc} = tl_smla{half}{whalf}({operand}, {wreg}, {acc});")
        return lines

    two_rows = shape.two_rows
    pair_step, tail_step = step(((0, 0), (0, 1))), step(((0, 0),))
    quad_step, quad_tail = (step(((0, 0), (0, 1), (1, 0), (1, 1))), step(((0, 0), (1, 0)))) if two_rows else ([], [])
    weights = []
    for r in range(shape.kh):
        for j in pair_taps:
            if f"p{r}_{j}" in used_regs:
                weights.append(f"const int32_t p{r}_{j} = tl_pair({weight(r, j)}, {weight(r, j + 2)});")
    for i in range(0, len(loose), 2):
        name = f"s{i // 2}"
        if name in used_regs:
            top = weight(*loose[i + 1]) if i + 1 < len(loose) else "0"
            weights.append(f"const int32_t {name} = tl_pair({weight(*loose[i])}, {top});")
    # Plane row r is input row r - pt. A negative pad (a patch reading a larger region,
    # engine.patches) starts the copy inside the input and leaves no border there.
    top, left, skip_rows, skip_cols = max(shape.pt, 0), max(shape.pl, 0), max(-shape.pt, 0), max(-shape.pl, 0)
    copy_rows = max(0, min(shape.h - skip_rows, rows - top))
    copy_cols = max(0, min(shape.w - skip_cols, width - left))
    geo = Geometry(dict(out_h=shape.oh, out_w=shape.ow, top=min(top, rows), left=min(left, width), copy_rows=copy_rows,
                        copy_cols=copy_cols, skip=(skip_rows * shape.w + skip_cols) * shape.c, in_row=shape.w * shape.c,
                        plane_at=top * width + left, row_bytes=shape.ow * co), shape.shared is not None)
    body = ["int8_t *plane = (int8_t *)room;", f"const int32_t off2 = {pair_literal(-zero_point_of(x))};", "int c, oy, ox;",
            f"tl_plane_border(plane, {rows}, {width}, {geo['top']}, {geo['left']}, {geo['copy_rows']}, "
            f"{geo['copy_cols']}, {zero_point_of(x)});",
            f"for (c = 0; c < {shape.c}; ++c) {{",
            f"    tl_plane_in(in + {geo['skip']} + c, {geo['copy_rows']}, {geo['copy_cols']}, "
            f"{geo['in_row']}, {shape.c}, plane + {geo['plane_at']}, {width});"]
    inner = []
    if shape.mult > 1:
        body += ["    int mm;", f"    for (mm = 0; mm < {shape.mult}; ++mm) {{", f"        const int oc = c * {shape.mult} + mm;"]
        indent = "        "
    else:
        body += ["    const int oc = c;"]
        indent = "    "

    def rounding(mode: int) -> str:
        value = f"tl_rq_h(sh, {c_int(zero_point_of(y))}, {mode})" if (mode & RQ_BASE) in (RQ_EVEN, RQ_EVEN_ZP) else "0"
        return f"const int32_t h = {value};"

    def rows_in(mode: int) -> list[str]:
        out_tail = f"{mode}, {c_int(zero_point_of(y))}, {lo}, {hi}"
        return _rows_loop(shape, geo, width, co, out_tail, pair_step, tail_step, quad_step, quad_tail, two_rows)

    inner += [f"const int8_t *wk = {wname} + oc;", f"const int32_t *q = {rqname} + {len(rq) // co} * oc;",
              "const int32_t bias = q[0], m = q[1], sh = q[2];"]
    if len(modes) == 1:
        inner += [rounding(modes[0]), *weights, *rows_in(modes[0])]
    else:
        inner += [*weights, "if (q[3]) {", *("    " + line for line in [rounding(modes[0]), *rows_in(modes[0])]),
                  "} else {", *("    " + line for line in [rounding(modes[1]), *rows_in(modes[1])]), "}"]
    body += [indent + line for line in inner]
    if shape.mult > 1:
        body.append("    }")
    body.append("}")
    return geo.bind(g, position, op, body)


def _rows_loop(shape: DepthwiseShape, geo: Geometry, width: int, co: int, out_tail: str, pair_step: list[str],
               tail_step: list[str], quad_step: list[str], quad_tail: list[str], two_rows: bool) -> list[str]:
    """The output rows of one channel plane: pairs of rows two columns at a time (stride 1), or
    single rows two columns at a time; then an odd column and an odd row."""
    def store(acc: str, offset: str | int) -> str:
        return f"o[{offset}] = tl_out8({acc}, m, h, sh, {out_tail});"

    row, oh = geo["row_bytes"], geo["out_h"]
    half = f"{shape.ow // 2}" if not geo.shared else "out_w >> 1"
    odd_column = bool(shape.ow % 2)
    lines = []
    if two_rows:
        lines += [f"for (oy = 0; oy + 1 < {oh}; oy += 2) {{",
                  f"    const int8_t *p = plane + oy * {width};",
                  f"    int8_t *o = out + oy * {row} + oc;",
                  f"    for (ox = 0; ox < {half}; ++ox) {{",
                  "        int32_t a00 = bias, a01 = bias, a10 = bias, a11 = bias;",
                  *("        " + line for line in quad_step),
                  "        " + store("a00", 0), "        " + store("a01", co),
                  "        " + store("a10", row), "        " + store("a11", f"{row} + {co}" if geo.shared else int(row) + co),
                  "        p += 2;", f"        o += {2 * co};", "    }"]
        lines += ["    " + line for line in geo.when(odd_column, "out_w & 1", [
            "{", "    int32_t a00 = bias, a10 = bias;", *("    " + line for line in quad_tail),
            "    " + store("a00", 0), "    " + store("a10", row), "}"])]
        lines.append("}")
        if not geo.shared and shape.oh % 2 == 0:
            return lines
        last_row = [f"oy = {oh} - 1;" if geo.shared else f"oy = {shape.oh - 1};"]
        loop, close = ["{"], ["}"]
    else:
        last_row, loop, close = [], [f"for (oy = 0; oy < {oh}; ++oy) {{"], ["}"]
    one_row = [*loop,
               f"    const int8_t *p = plane + oy * {shape.sh * width};",
               f"    int8_t *o = out + oy * {row} + oc;",
               "    _Pragma(\"GCC unroll 2\")",
               f"    for (ox = 0; ox < {half}; ++ox) {{",
               "        int32_t a00 = bias, a01 = bias;",
               *("        " + line for line in pair_step),
               "        " + store("a00", 0), "        " + store("a01", co),
               f"        p += {2 * shape.sw};", f"        o += {2 * co};", "    }",
               *("    " + line for line in geo.when(odd_column, "out_w & 1", [
                   "{", "    int32_t a00 = bias;", *("    " + line for line in tail_step), "    " + store("a00", 0), "}"])),
               *close]
    if two_rows:
        return lines + geo.when(True, "out_h & 1", last_row + one_row) if geo.shared else lines + last_row + one_row
    return lines + one_row
