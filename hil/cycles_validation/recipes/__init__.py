"""The recipes that rebuild published software for its board's emulated twin, by the key a
PublishedLatency names (hil/cycles_validation/published/*.yaml)."""
from __future__ import annotations

from hil.cycles_validation.published import Recipe
from hil.cycles_validation.recipes.microtvm import MICROTVM_CMSIS_NN, MICROTVM_NATIVE
from hil.cycles_validation.recipes.tflm import TflmRecipe
from hil.cycles_validation.recipes.tflm_reference import TFLM_REFERENCE
from hil.cycles_validation.recipes.tinyengine import TinyEngineRecipe

RECIPES: dict[str, Recipe] = {
    TFLM_REFERENCE.name: TFLM_REFERENCE,  # MLPerf Tiny v0.5 reference (TFLM 2.3.1 + CMSIS-NN), NUCLEO-L4R5ZI
    MICROTVM_NATIVE.name: MICROTVM_NATIVE,  # OctoML, MLPerf Tiny v1.0, NUCLEO-L4R5ZI
    MICROTVM_CMSIS_NN.name: MICROTVM_CMSIS_NN,  # OctoML, MLPerf Tiny v1.0, NUCLEO-L4R5ZI
    "tinyengine": TinyEngineRecipe(),  # TinyEngine's README, STM32H743
    "tflm": TflmRecipe("tflm", kernels="reference"),  # TinyEngine's README, STM32H743
    "tflm-cmsis-nn": TflmRecipe("tflm-cmsis-nn", kernels="cmsis-nn"),  # TinyEngine's README, STM32H743
}
