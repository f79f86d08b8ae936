"""Metrics (AUC, logloss, GAUC, calibration), DVC plot data and the evaluation report."""
