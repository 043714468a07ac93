"""HardSigmoid(x) * x, and its Clip/Relu6 spellings, -> HardSwish: onnxscript's rules, with the opset guard they
lack (HardSwish exists from opset 14)."""

from onnxscript.rewriter.rules.common._fuse_hardswish import (
    HardSigmoidFusion, HardSwishFusion, HardSwishFusionFromHardSigmoid,
)

from .._util import with_min_opset

rules = [
    with_min_opset(HardSwishFusion, 14, "HardSwish").rule(),
    HardSigmoidFusion().rule(),
    with_min_opset(HardSwishFusionFromHardSigmoid, 14, "HardSwish").rule(),
]
