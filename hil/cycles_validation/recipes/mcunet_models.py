"""The .tflite files of the models TinyEngine's README measured, by the net_id it names them with:
MCUNet's model zoo files (mit-han-lab/mcunet, mcunet/model_zoo.py maps each net_id to the file's
net_name), and the one model TinyEngine's own repository ships (assets/vww.tflite)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from hil.cycles_validation.published import SourceFolder
from hil.cycles_validation.recipes.sourcetree import SourceFolderError, source_folder
from hil.experiments.models import ModelSource, read_model_file

MCUNET_ZOO_URL = "https://hanlab18.mit.edu/projects/tinyml/mcunet/release/"  # model_zoo.py's url_base
MCUNET_MODELS = SourceFolder(
    env="TINYLAB_MCUNET_MODELS_DIR",
    what="MCUNet's model zoo .tflite files, each named by its zoo net_name (mcunet-320kb-1mb_imagenet.tflite)",
    obtain=f"download {MCUNET_ZOO_URL}NET_NAME.tflite into the folder (or: pip install mcunet; python -c "
           "\"from mcunet.model_zoo import download_tflite; print(download_tflite(net_id='mcunet-in3'))\")",
)
TINYENGINE_SOURCE = SourceFolder(  # TinyEngine's checkout (recipes.tinyengine builds it), which ships assets/vww.tflite
    env="TINYLAB_TINYENGINE_DIR",
    what="mit-han-lab/tinyengine at 0363956 (code_generator/, TinyEngine/, assets/)",
    obtain="git clone https://github.com/mit-han-lab/tinyengine DIR && "
           "git -C DIR checkout 03639563ebf6538fff557515e31667fca6448cd3",
)
MODEL_FOLDERS = {source.env: source for source in (MCUNET_MODELS, TINYENGINE_SOURCE)}


@dataclass(frozen=True)
class ModelFile:
    """Where a model's .tflite file is: a file in the folder of the SourceFolder `env`."""

    env: str
    path: str
    note: str = ""


# net_id (as TinyEngine's README names it) -> its file. model_zoo.py: mcunet-in3 is
# 'mcunet-320kb-1mb_imagenet'. assets/vww.tflite (80x80x3, 11.58 M MACs, 0.427 M parameters) is
# the architecture of mcunet-vww1 ('mcunet-5fps_vww': 11.6 M MACs, 0.43 M parameters, resolution
# 80 in MCUNet's README), converted with float32 input and output (QUANTIZE and DEQUANTIZE ops) and
# a TRANSPOSE and MEANs where the zoo's file pools: not byte for byte the zoo's file.
MODEL_FILES: dict[str, ModelFile] = {
    "mcunet-in3": ModelFile(MCUNET_MODELS.env, "mcunet-320kb-1mb_imagenet.tflite"),
    "mcunet-in2": ModelFile(MCUNET_MODELS.env, "mcunet-256kb-1mb_imagenet.tflite"),
    "mcunet-in1": ModelFile(MCUNET_MODELS.env, "mcunet-5fps_imagenet.tflite"),
    "mcunet-in0": ModelFile(MCUNET_MODELS.env, "mcunet-10fps_imagenet.tflite"),
    "mcunet-vww2": ModelFile(MCUNET_MODELS.env, "mcunet-320kb-1mb_vww.tflite"),
    "mcunet-vww0": ModelFile(MCUNET_MODELS.env, "mcunet-10fps_vww.tflite"),
    "mcunet-vww1": ModelFile(TINYENGINE_SOURCE.env, "assets/vww.tflite",
                             "TinyEngine's assets/vww.tflite: mcunet-vww1's architecture with float32 input and output"),
}


def model_source(model: str, folders: Mapping[str, Path] | None) -> ModelSource:
    """The model `model` (a net_id) read from its folder (`folders`, else the environment)."""
    if model not in MODEL_FILES:
        raise SourceFolderError(f"model {model!r}: no .tflite file known for it "
                                f"(hil/cycles_validation/recipes/mcunet_models.py knows {', '.join(MODEL_FILES)})")
    where = MODEL_FILES[model]
    root = source_folder(MODEL_FOLDERS[where.env], folders)
    path = root / where.path
    if not path.is_file():
        raise SourceFolderError(f"model {model}: no {where.path} in {where.env}={root} "
                                f"(obtain it with: {MODEL_FOLDERS[where.env].obtain})")
    return ModelSource(model, read_model_file(path), path)
