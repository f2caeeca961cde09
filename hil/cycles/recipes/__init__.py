"""The recipes that rebuild published software for a board's emulated twin, by the key a
PublishedLatency names (hil/cycles/published/*.yaml)."""
from __future__ import annotations

from hil.cycles.published import Recipe
from hil.cycles.recipes.tinyengine import TinyEngineRecipe
from hil.cycles.recipes.tflm import TflmRecipe

RECIPES: dict[str, Recipe] = {
    "tinyengine": TinyEngineRecipe(),
    "tflm": TflmRecipe("tflm", kernels="reference"),
    "tflm-cmsis-nn": TflmRecipe("tflm-cmsis-nn", kernels="cmsis-nn"),
}
