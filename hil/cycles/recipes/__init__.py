"""The recipes that rebuild published software for its board's emulated twin, by key
(PublishedLatency.recipe)."""
from __future__ import annotations

from hil.cycles.published import Recipe
from hil.cycles.recipes.microtvm import MICROTVM_CMSIS_NN, MICROTVM_NATIVE
from hil.cycles.recipes.tflm_reference import TFLM_REFERENCE

RECIPES: dict[str, Recipe] = {
    TFLM_REFERENCE.name: TFLM_REFERENCE,  # MLPerf Tiny v0.5 reference (TFLM 2.3.1 + CMSIS-NN), NUCLEO-L4R5ZI
    MICROTVM_NATIVE.name: MICROTVM_NATIVE,  # OctoML, MLPerf Tiny v1.0, NUCLEO-L4R5ZI
    MICROTVM_CMSIS_NN.name: MICROTVM_CMSIS_NN,  # OctoML, MLPerf Tiny v1.0, NUCLEO-L4R5ZI
}
