"""Constants that the Python code generator and the C kernels must agree on: each Python value is
checked against its #define twin in engine/kernels/*.h, or against the literal or comment of the
C that states it where the kernel has no #define (the kernels change in comments only)."""
from __future__ import annotations

import re

import pytest

from engine import quant
from engine.codegen import requant
from engine.codegen.generator import KERNELS_DIR
from engine.codegen.literals import c_int
from engine.ops import elementwise, fully_connected, pooling, softmax
from engine.ops.conv import emit_optimized

_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)\s+(-?\d+)\b", re.MULTILINE)


def c_defines() -> dict[str, set[int]]:
    """Every integer #define of the kernel headers: name -> the values it is given (TL_DSP has two)."""
    found: dict[str, set[int]] = {}
    for header in sorted(KERNELS_DIR.glob("*.h")):
        for name, value in _DEFINE.findall(header.read_text()):
            found.setdefault(name, set()).add(int(value))
    return found


TWINS = {
    "TL_MV_ROWS": fully_connected.GEMV_ROWS,
    "TL_FUSED_STEPS": emit_optimized.FUSED_STEPS,
    "TL_RQ_PORTABLE": requant.RQ_PORTABLE,
    "TL_RQ_ANY": requant.RQ_ANY,
    "TL_RQ_EVEN": requant.RQ_EVEN,
    "TL_RQ_EVEN_ZP": requant.RQ_EVEN_ZP,
    "TL_RQ_SIGNED": requant.RQ_SIGNED,
    "TL_INT32_MAX": quant.INT32_MAX,
}


def test_the_parser_finds_defines():
    assert len(c_defines()) >= len(TWINS)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_python_constant_matches_its_c_define(name: str):
    assert c_defines().get(name) == {TWINS[name]}, f"{name} in engine/kernels/*.h vs Python {TWINS[name]}"


def test_requant_base_mask_matches_tl_rq_base():
    text = (KERNELS_DIR / "tl_opt.h").read_text()
    mask = re.search(r"#define\s+TL_RQ_BASE\(mode\)\s+\(\(mode\)\s*&\s*(\d+)\)", text)
    assert mask is not None and int(mask.group(1)) == requant.RQ_BASE


def test_even_zp_shift_limit_matches_tl_opt_comment():
    """tl_opt.h states the RQ_EVEN_ZP limit in its mode table's comment."""
    assert f"e <= {requant.EVEN_ZP_MAX_SHIFT} keeps hi within 32 bits" in (KERNELS_DIR / "tl_opt.h").read_text()


def test_add_left_shift_has_one_source():
    """The C ADD kernels take the left shift as an argument; its only source is engine.ops.elementwise."""
    assert elementwise.ADD_LEFT_SHIFT == elementwise.AddParams.left_shift == 20
    assert "ADD_LEFT_SHIFT" not in c_defines() and "TL_ADD_LEFT_SHIFT" not in c_defines()


def test_gemv_comment_names_the_row_count():
    text = (KERNELS_DIR / "tl_opt.h").read_text()
    assert f"1 vector x {fully_connected.GEMV_ROWS} rows (TL_MV_ROWS" in text
    assert "1 vector x 4 rows" not in text


def test_int32_min_is_written_as_tl_requant_h_writes_it():
    """TL_INT32_MIN is not a plain number, so c_defines cannot read it: the literal code generation
    writes for INT32_MIN is its text."""
    text = (KERNELS_DIR / "tl_requant.h").read_text()
    assert f"#define TL_INT32_MIN {c_int(quant.INT32_MIN)}" in text


def test_softmax_fixed_point_formats_match_the_kernel():
    """tl_softmax_s8.c holds the differences in Q5.26 and the sum of exponentials in Q12.19 as
    literals; engine.ops.softmax prepares the multiplier and diff_min for the same formats."""
    text = (KERNELS_DIR / "tl_softmax_s8.c").read_text()
    diff_bits, sum_bits = softmax.SCALED_DIFF_INTEGER_BITS, softmax.ACCUMULATION_INTEGER_BITS
    assert f"Q{diff_bits}.{31 - diff_bits}" in text and f"Q{sum_bits}.{31 - sum_bits}" in text
    assert f"tl_sat_rounding_mul_by_pot(a_mod_quarter_minus_quarter, {diff_bits})" in text
    assert f"TL_RDBP(tl_exp_on_negative_values_q{diff_bits}(scaled), {sum_bits})" in text
    assert f"bits_over_unit = {sum_bits} - headroom_plus_one" in text


def test_softmax_output_quantisation_matches_the_kernel():
    text = " ".join((KERNELS_DIR / "tl_softmax_s8.c").read_text().split())
    assert softmax.OUTPUT_SCALE == 1.0 / 256 and softmax.OUTPUT_ZERO_POINT == -128
    assert "(output scale 1/256, zero point -128)" in text
    assert f"unsat - {-softmax.OUTPUT_ZERO_POINT}" in text


def test_avgpool4_window_limit_matches_tl_opt_comment():
    """tl_avgpool4 sums in int16 lanes; the generator keeps larger windows on the library kernel."""
    assert f"windows of at most {pooling.AVGPOOL4_MAX_WINDOW} values cannot overflow them" in (KERNELS_DIR / "tl_opt.h").read_text()
