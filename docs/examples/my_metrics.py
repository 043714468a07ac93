"""A user's own metrics for edgecc (docs/metrics.md): run with --metric my_metrics:FUNCTION when this
file's folder is on PYTHONPATH, or install it with an entry point in the edgecc.metrics group."""

import numpy as np


def max_logit_error(outputs, labels, reference):
    """Largest absolute difference from the FP32 reference's outputs, over every sample and class."""
    return float(np.max(np.abs(outputs - reference)))


max_logit_error.needs = "reference"  # compared with the FP32 reference, no labels needed
max_logit_error.higher_is_better = False  # an error: a rise is an accuracy drop


def recall_of_class(k):
    """A metric factory: percent of the samples labelled ``k`` that the model puts in class ``k``."""

    def recall(outputs, labels, reference):
        mask = labels == k
        scores = outputs.reshape(len(outputs), -1)
        return 100.0 * float(np.mean(scores[mask].argmax(axis=1) == k)) if mask.any() else 100.0

    return recall


recall_of_7 = recall_of_class(7)
