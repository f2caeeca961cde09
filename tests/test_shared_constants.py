"""Constants that the Python code generator and the C kernels must agree on: each Python value is
checked against its #define twin in engine/kernels/*.h."""
from __future__ import annotations

import re

import pytest

from engine import quant
from engine.codegen import requant
from engine.codegen.generator import KERNELS_DIR
from engine.ops import elementwise, fully_connected
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
