"""The recipes that rebuild published software for its board's emulated twin, by key
(PublishedLatency.recipe)."""
from __future__ import annotations

from hil.cycles.published import Recipe
from hil.cycles.recipes.microtvm import MICROTVM_CMSIS_NN, MICROTVM_NATIVE

RECIPES: dict[str, Recipe] = {
    MICROTVM_NATIVE.name: MICROTVM_NATIVE,  # OctoML, MLPerf Tiny v1.0, NUCLEO-L4R5ZI
    MICROTVM_CMSIS_NN.name: MICROTVM_CMSIS_NN,  # OctoML, MLPerf Tiny v1.0, NUCLEO-L4R5ZI
}
