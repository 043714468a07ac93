"""OpenVINO's own INT8 path: NNCF's post-training quantisation of the converted FP32 model.

NNCF inserts FakeQuantize ops (its default "performance" preset: symmetric activations and weights)
and corrects biases; OpenVINO runs them as INT8. It picks its own statistics, so edgecc's
``--method`` does not apply here.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import TYPE_CHECKING

from ...errors import BackendUnavailable, ModelError

if TYPE_CHECKING:
    from ...data import Dataset


def quantize_with_nncf(model: object, calibration: Dataset) -> tuple[object, str]:
    """``model`` (an ov.Model) quantised by nncf.quantize on every batch of ``calibration``; and a note."""
    try:
        import nncf
    except ImportError as e:
        raise BackendUnavailable(
            f"openvino option int8_quantizer=nncf needs nncf, which cannot be imported ({e}); "
            'install it with: pip install "edgecc[openvino]"'
        ) from None
    nncf.set_log_level(logging.ERROR)
    t0 = time.perf_counter()
    try:
        # NNCF draws progress bars on stdout: keep stdout for edgecc's own output
        with contextlib.redirect_stdout(sys.stderr):
            quantized = nncf.quantize(model, nncf.Dataset(calibration.batches), subset_size=len(calibration.batches))
    except (RuntimeError, ValueError, nncf.errors.ValidationError) as e:
        raise ModelError(f"nncf.quantize failed on this model: {str(e).splitlines()[0][:300]}") from None
    note = (f"NNCF {nncf.__version__} post-training quantisation (performance preset) on {calibration.samples} samples "
            f"of {calibration.source} in {time.perf_counter() - t0:.1f} s")
    return quantized, note
