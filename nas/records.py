"""The search's figures as rows of the results store, all of one `nas run` under one run id:

- every architecture the search scored: `nas_validation_accuracy` (the supernet's, on the
  validation split), its predicted figures in `extra` (`role` "candidate", `method` evolution,
  random, or sample: the subnets an accuracy predictor learnt from); with a predictor, what it
  scored goes apart as `nas_predicted_accuracy`;
- every network deployed on the board: the run's own rows (latency, peak SRAM, flash, TFLM
  match), the prediction beside them (`nas_predicted_latency`, `nas_predicted_peak_sram`,
  `nas_predicted_flash`) and the test accuracies (`float_accuracy`, `int8_accuracy`),
  `target_matches_host`; `extra` names its `role`: winner (evolution), random (random search's
  best), uniform (the scaled baseline) or deployed (`nas deploy`).

`tinylab report` finds a search by its `nas_validation_accuracy` rows (`CANDIDATE_METRIC`)."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hil.store.measurement import Measurement
from hil.store.provenance import Provenance
from nas.constraints import Figures

CANDIDATE_METRIC = "nas_validation_accuracy"
PREDICTED_ACCURACY_METRIC = "nas_predicted_accuracy"  # a candidate scored by the accuracy predictor, not for real
PREDICTED_METRICS = ("nas_predicted_latency", "nas_predicted_peak_sram", "nas_predicted_flash")
ROLES = ("winner", "random", "uniform", "deployed")


def candidate_rows(provenance: Provenance, method: str, scored: dict, figures_of, context: dict[str, Any],
                   metric: str = CANDIDATE_METRIC) -> list[Measurement]:
    """One row per scored architecture (`scored`: arch -> validation accuracy); `figures_of(arch)`
    gives its predicted `Figures`."""
    rows = []
    for arch, accuracy in scored.items():
        f: Figures = figures_of(arch)
        extra = {**context, "role": "candidate", "method": method, "architecture": str(arch),
                 "predicted_latency": f.latency, "latency_unit": f.latency_unit,
                 "predicted_peak_sram_bytes": f.peak_sram_bytes, "predicted_flash_bytes": f.flash_bytes,
                 "macs": f.macs, "patches": f.patches or "off"}
        rows.append(provenance.measurement(f"nas:{arch}", "", metric, float(accuracy), "ratio", extra))
    return rows


def deployment_rows(provenance: Provenance, deployment, role: str, context: dict[str, Any]) -> list[Measurement]:
    """The measured run of a deployed network and its prediction and accuracies (`nas.deploy.Deployment`)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
    extra = {**context, "role": role, "architecture": deployment.architecture,
             "test_images": deployment.test_images, "target_images": deployment.target_images,
             "patches": deployment.predicted.patches or "off"}
    run = deployment.run
    rows = run.measurements(provenance)
    rows = [replace(row, extra=json.dumps({**json.loads(row.extra or "{}"), **extra}, sort_keys=True)) for row in rows]
    p = deployment.predicted
    figures = [("nas_predicted_peak_sram", p.peak_sram_bytes, "bytes"), ("nas_predicted_flash", p.flash_bytes, "bytes"),
               ("float_accuracy", deployment.float_accuracy, "ratio"), ("int8_accuracy", deployment.int8_accuracy, "ratio"),
               ("target_matches_host", float(deployment.target_matches), "bool")]
    if p.latency is not None:
        figures.insert(0, ("nas_predicted_latency", p.latency, p.latency_unit))
    for metric, value, unit in figures:
        rows.append(provenance.measurement(deployment.model, run.model_sha256, metric, value, unit, extra))
    return rows

