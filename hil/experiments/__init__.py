"""What the lab measures: models run and checked against TFLM, the TFLM baseline, calibration,
MLPerf Tiny, comparisons, the nightly run and its regressions, and the device under test."""
