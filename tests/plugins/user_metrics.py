"""A user's metrics, as a detection or regression user would plug them in (tests install this module through the
``edgecc.metrics`` entry-point group, or name it as ``user_metrics:FUNCTION``)."""

import numpy as np


def mean_abs_error(outputs, labels, reference):
    """Mean absolute difference from the FP32 reference's outputs (lower is better)."""
    return float(np.mean(np.abs(outputs - reference)))


mean_abs_error.needs = "reference"
mean_abs_error.higher_is_better = False


def class0_recall(outputs, labels, reference):
    """Percent of the samples labelled 0 that the model puts in class 0."""
    mask = labels == 0
    return 100.0 * float(np.mean(outputs.reshape(len(outputs), -1)[mask].argmax(axis=1) == 0)) if mask.any() else 100.0
