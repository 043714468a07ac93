"""INT8 that keeps accuracy: cross-layer equalisation, bias correction, per-tensor calibration method,
accuracy-aware mixed precision. Models are built here from seeded weights."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecc.data import Dataset
from edgecc.graph.quantize import QuantizeSettings, quantize_qdq
from edgecc.graph.quantize._session import outputs
from edgecc.graph.quantize.equalize import _ranges, equalize, find_pairs, range_ratio


def _model(nodes, inits, x_shape, y_shape, opset=17) -> ir.Model:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(a.astype(np.float32), n) for n, a in inits.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    onnx.checker.check_model(proto, full_check=True)
    return ir.serde.deserialize_model(proto)


def _data(x: np.ndarray, batch: int = 8) -> Dataset:
    batches = [{"x": x[i:i + batch]} for i in range(0, len(x), batch)]
    return Dataset(batches, [len(b["x"]) for b in batches], None, "test")


def depthwise_net(seed: int = 0, act: str = "Relu", channels: int = 8) -> ir.Model:
    """pointwise -> act -> depthwise 3x3 -> act -> pointwise, with per-channel weight ranges 1000x apart."""
    rng = np.random.default_rng(seed)
    c = channels
    spread = np.logspace(-1.5, 1.5, c)
    inits = {
        "w1": rng.normal(size=(c, 3, 1, 1)) * spread[:, None, None, None], "b1": rng.normal(size=c) * 0.1,
        "w2": rng.normal(size=(c, 1, 3, 3)) * spread[::-1, None, None, None], "b2": rng.normal(size=c) * 0.1,
        "w3": rng.normal(size=(4, c, 1, 1)), "b3": rng.normal(size=4) * 0.1,
    }
    extra = {}
    if act == "Relu6":
        extra = {"lo": np.array(0.0), "hi": np.array(6.0)}
    def a(i, o):
        if act == "Relu6":
            return helper.make_node("Clip", [i, "lo", "hi"], [o], name=f"act_{o}")
        return helper.make_node("Relu", [i], [o], name=f"act_{o}")
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="pw1"), a("c1", "a1"),
        helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], name="dw", group=c, pads=[1, 1, 1, 1]), a("c2", "a2"),
        helper.make_node("Conv", ["a2", "w3", "b3"], ["y"], name="pw2"),
    ]
    return _model(nodes, inits | extra, [1, 3, 6, 6], [1, 4, 6, 6])


# -- cross-layer equalisation ------------------------------------------------------------------------


def test_cle_keeps_outputs_and_equalises_ranges():
    model = depthwise_net()
    x = np.random.default_rng(1).normal(size=(16, 3, 6, 6)).astype(np.float32)
    data = _data(x, 1)
    before = outputs(model, data)
    pairs, _ = find_pairs(model)
    ratios_before = [range_ratio(*_ranges(p.first, p.second)) for p in pairs]
    result = equalize(model)
    after = outputs(model, data)
    assert [p for p in result.pairs] == [("pw1", "dw"), ("dw", "pw2")]
    assert max(ratios_before) > 100
    ratios_after = [range_ratio(*_ranges(p.first, p.second)) for p in pairs]
    # the last pair to be scaled in a sweep is exactly equal; the sweeps bring the chain within 1%
    assert max(ratios_after) < 1.01
    scale = np.abs(before).max()
    assert np.abs(after - before).max() <= 1e-4 * scale
    onnx.checker.check_model(ir.serde.serialize_model(model), full_check=True)


def test_cle_skips_relu6_pairs_and_says_why():
    model = depthwise_net(act="Relu6")
    w_before = {n: v.const_value.numpy().copy() for n, v in model.graph.initializers.items()}
    result = equalize(model)
    assert result.pairs == []
    assert len(result.skipped) == 2 and all("finite bound" in s for s in result.skipped)
    assert all(np.array_equal(v.const_value.numpy(), w_before[n]) for n, v in model.graph.initializers.items())


def test_cle_through_relu6_adjusted_to_calibration_maxima_keeps_outputs_on_that_data():
    from edgecc.graph.quantize.equalize import clip_maxima

    model = depthwise_net(seed=7, act="Relu6")
    x = np.random.default_rng(8).normal(size=(16, 3, 6, 6)).astype(np.float32)
    data = _data(x, 1)
    before = outputs(model, data)
    maxima = clip_maxima(model, data)
    assert sorted(maxima) == ["c1", "c2"]
    assert any((m >= 6.0).any() for m in maxima.values())  # some channels saturate: they must keep scale 1
    pairs, _ = find_pairs(model, bounded=True)
    ratio_before = max(range_ratio(*_ranges(p.first, p.second)) for p in pairs)
    w_before = {n: v.const_value.numpy().copy() for n, v in model.graph.initializers.items()}
    result = equalize(model, clip_maxima=maxima)
    assert result.pairs == [("pw1", "dw"), ("dw", "pw2")]
    assert result.worst_ratio_after < ratio_before
    sat = maxima["c1"] >= 6.0
    np.testing.assert_array_equal(model.graph.initializers["w1"].const_value.numpy()[sat], w_before["w1"][sat])
    after = outputs(model, data)
    assert np.abs(after - before).max() <= 1e-4 * np.abs(before).max()


# -- bias correction --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["one-pass", "sequential"])
def test_bias_correction_lowers_the_mean_output_shift(mode):
    from edgecc.graph.quantize.bias_correction import correct_bias

    model = depthwise_net(seed=3)
    x = np.random.default_rng(4).normal(size=(32, 3, 6, 6)).astype(np.float32)
    cal = _data(x, 1)
    q = quantize_qdq(model, cal, QuantizeSettings(samples=32)).model
    ref = outputs(model, cal)
    shift_before = np.abs((outputs(q, cal) - ref).mean(axis=(0, 2, 3))).mean()
    result = correct_bias(q, model, cal, mode)
    shift_after = np.abs((outputs(q, cal) - ref).mean(axis=(0, 2, 3))).mean()
    assert result.layers == ["pw1", "dw", "pw2"]
    assert result.shift_after < 0.5 * result.shift_before
    assert shift_after < 0.5 * shift_before  # the model's own output, per channel, on the same samples


def test_unknown_bias_correction_mode_is_a_clear_error():
    from edgecc.errors import BadInputError
    from edgecc.graph.quantize.bias_correction import correct_bias

    model = depthwise_net()
    with pytest.raises(BadInputError, match="unknown bias correction mode 'both'"):
        correct_bias(model, model, _data(np.zeros((1, 3, 6, 6), np.float32)), "both")


# -- calibration method per tensor --------------------------------------------------------------------


def _mse_u8(x, lo, hi):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0
    zp = np.round(-lo / scale)
    q = np.clip(np.round(x / scale) + zp, 0, 255)
    return float(np.mean(((q - zp) * scale - x) ** 2))


def test_per_tensor_choice_takes_the_lowest_mse_range_on_a_tensor_with_outliers():
    from edgecc.graph.quantize.ranges import pick

    rng = np.random.default_rng(0)
    # one outlier in a million: clipping it costs (200 - 4)^2 / 1e6 = 0.038, while min/max's step (204 / 255)
    # costs every value step^2 / 12 = 0.053
    x = np.concatenate([rng.normal(size=1_000_000), [200.0]]).astype(np.float32)
    candidates = {"minmax": (float(x.min()), float(x.max())), "percentile 99.99": (-3.9, 3.9),
                  "percentile 99.9": (-3.3, 3.3), "entropy": (-1.0, 1.0)}
    choice = pick(x, candidates, tensor="t")
    expected = {m: _mse_u8(x.astype(np.float64), lo, hi) for m, (lo, hi) in candidates.items()}
    assert choice.method == min(expected, key=expected.get)
    assert choice.method.startswith("percentile")
    for m, v in expected.items():
        assert choice.mse[m] == pytest.approx(v, rel=1e-3)
    # without outliers, clipping costs more than the coarser step: min/max wins
    y = rng.uniform(0, 6, size=100_000).astype(np.float32)
    assert pick(y, {"minmax": (0.0, 6.0), "percentile 99.9": (0.0, 5.5)}).method == "minmax"


def test_mse_method_writes_the_chosen_ranges_into_the_qdq_model():
    model = depthwise_net(seed=5)
    x = np.random.default_rng(6).normal(size=(16, 3, 6, 6)).astype(np.float32)
    result = quantize_qdq(model, _data(x, 1), QuantizeSettings(method="mse", samples=16))
    assert result.ranges and any("per-tensor ranges by lowest quantisation MSE" in n for n in result.notes)
    scales = {n.inputs[0].name: float(n.inputs[1].const_value.numpy()) for n in result.model.graph
              if n.op_type == "QuantizeLinear"}
    chosen = {c.tensor: c for c in result.ranges}
    assert chosen["x"].method in chosen["x"].mse
    c = chosen["x"]
    assert scales["x"] == pytest.approx((max(c.high, 0) - min(c.low, 0)) / 255, rel=1e-5)
    assert chosen["x"].mse[c.method] == min(chosen["x"].mse.values())


# -- accuracy-aware mixed precision -------------------------------------------------------------------


def sensitive_mlp(seed: int = 0) -> ir.Model:
    """x -> fc1 -> ReLU -> fc2 -> ReLU -> fc3. fc1 adds one channel ~1000x larger than the others that fc2
    ignores (weight 0): the INT8 range of fc2's input is set by it and the useful channels round to a few
    levels. Only fc2 reads that tensor, so only fc2 in float repairs the model."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(16, 16)) * 0.5
    w1[:, 0] = np.abs(w1[:, 0]) * 2000.0  # [in, out]: output channel 0
    w2 = rng.normal(size=(16, 16))
    w2[0] = 0.0
    inits = {"w1": w1, "b1": np.zeros(16), "w2": w2, "b2": rng.normal(size=16) * 0.1, "w3": rng.normal(size=(10, 16)),
             "b3": np.zeros(10)}
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1", transB=0),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], name="fc2", transB=0),
        helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["y"], name="fc3", transB=1),
    ]
    return _model(nodes, inits, [8, 16], [8, 10])


def test_accuracy_aware_loop_reverts_exactly_the_sensitive_layer():
    from edgecc.graph.quantize.mixed import quantize_within_budget

    model = sensitive_mlp()
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=(400, 16))).astype(np.float32)
    cal = _data(x[:200])
    ev = _data(x[200:])
    ev.labels = outputs(model, ev).argmax(1)
    result = quantize_within_budget(model, cal, ev, 5.0, QuantizeSettings(samples=200))
    assert result.reference_score == 100.0
    assert result.int8_score < 20.0  # the all-INT8 model is far outside the budget
    assert result.float_layers == ["fc2"]
    assert result.sensitivity[0][0] == "fc2" and result.sensitivity[0][1] > 0.9
    assert result.drop <= 5.0 and result.within_budget
    assert [s.action for s in result.steps] == ["int8", "add"]  # stopped at the first model within the budget
    assert result.steps[1].drop == result.drop
    calls = []
    quantize_within_budget(model, cal, ev, 5.0, QuantizeSettings(samples=200), progress=lambda *a: calls.append(a))
    ranked = [c for c in calls if c[0] == "ranking layers"]
    assert [c[1] for c in ranked] == list(range(1, len(result.sensitivity) + 1)) and ranked[-1][2] == len(ranked)
    assert [c for c in calls if c[2] is None] == [(f"evaluating with 1 of {len(ranked)} layers in float", 1, None)]
    nodes = {n.name: n for n in result.model.graph}
    assert all(v.producer() is None or v.producer().op_type != "DequantizeLinear" for v in nodes["fc2"].inputs)
    for name in ("fc1", "fc3"):
        assert nodes[name].inputs[1].producer().op_type == "DequantizeLinear"


def test_ranking_each_layer_int8_alone_finds_the_sensitive_layer():
    from edgecc.graph.quantize.mixed import rank_by_int8_alone
    from edgecc.graph.quantize.revert import quantized_layers

    model = sensitive_mlp()
    x = np.abs(np.random.default_rng(1).normal(size=(200, 16))).astype(np.float32)
    q = quantize_qdq(model, _data(x), QuantizeSettings(samples=200))
    ranking = rank_by_int8_alone(q.model, q.float_model, quantized_layers(q.model), _data(x[:64]))
    assert [n for n, _ in ranking][0] == "fc2"
    assert ranking[0][1] > 10 * max(e for _, e in ranking[1:]) and all(e >= 0 for _, e in ranking)


def test_keeping_every_layer_in_float_gives_the_float_model_back():
    from edgecc.graph.quantize.revert import keep_in_float, quantized_layers

    model = depthwise_net(seed=2)
    x = np.random.default_rng(2).normal(size=(8, 3, 6, 6)).astype(np.float32)
    data = _data(x, 1)
    q = quantize_qdq(model, data, QuantizeSettings(samples=8)).model
    layers = quantized_layers(q, include_movement=True)
    assert layers == ["pw1", "dw", "pw2"]
    back = keep_in_float(q, model, layers).model
    assert not [n for n in back.graph if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    np.testing.assert_allclose(outputs(back, data), outputs(model, data), rtol=0, atol=1e-5)
    onnx.checker.check_model(ir.serde.serialize_model(back), full_check=True)


def test_a_layer_reverted_through_a_folded_clip_passes_the_checker():
    """The quantiser folds ReLU6 into the Q range; reverting re-inserts the Clip with copies of its scalar bounds,
    which must stay scalars (a [1] initializer under a scalar value fails strict shape inference)."""
    from edgecc.graph.quantize.revert import keep_in_float

    model = depthwise_net(seed=2, act="Relu6")
    data = _data(np.random.default_rng(2).normal(size=(8, 3, 6, 6)).astype(np.float32), 1)
    q = quantize_qdq(model, data, QuantizeSettings(samples=8))
    back = keep_in_float(q.model, q.float_model, ["dw", "pw2"])
    assert not back.notes and sum(n.op_type == "Clip" for n in back.model.graph) == 2
    proto = ir.serde.serialize_model(back.model)
    onnx.checker.check_model(proto, full_check=True)
    assert all(list(i.dims) == [] for i in proto.graph.initializer if i.name.startswith(("lo", "hi")))
    ref = outputs(model, data)
    # pw1 stays INT8: the output is not FP32's, but closer to it than the all-INT8 model's
    assert np.abs(outputs(back.model, data) - ref).mean() < np.abs(outputs(q.model, data) - ref).mean()


def test_layers_the_budget_does_not_need_go_back_to_int8():
    from edgecc.graph.quantize.mixed import quantize_within_budget

    model = sensitive_mlp()
    x = np.abs(np.random.default_rng(1).normal(size=(400, 16))).astype(np.float32)
    cal, ev = _data(x[:200]), _data(x[200:])
    ev.labels = outputs(model, ev).argmax(1)
    tight = quantize_within_budget(model, cal, ev, 2.0, QuantizeSettings(samples=200))
    assert tight.within_budget and tight.drop <= 2.0
    assert "fc2" in tight.float_layers
    within = [s for s in tight.steps if s.action in ("add", "bisect") and s.drop <= 2.0]
    added = min(within, key=lambda s: len(s.float_layers)).float_layers
    # the shortest prefix within the budget, then every layer of it beyond the final set tried back in INT8
    assert set(tight.float_layers) <= set(added)
    assert len(tight.float_layers) < len(added) or len(added) == 1
    for s in tight.steps:
        if s.action == "try-remove" and s.drop <= 2.0:
            assert set(s.float_layers) == set(tight.float_layers)


@pytest.mark.parametrize("needed", [1, 2, 3, 7, 8, 9, 40, 64])
def test_the_shortest_prefix_is_found_in_logarithmic_evaluations(needed):
    from edgecc.graph.quantize.mixed import shortest_prefix

    calls = []

    def drop_of(n, action):
        calls.append((n, action))
        return 0.0 if n >= needed else 10.0 - n / 10

    assert shortest_prefix(64, drop_of, 0.5) == needed
    assert len(calls) <= 2 * math.ceil(math.log2(needed)) + 1, calls
    assert [a for _, a in calls if a == "add"] and all(a in ("add", "bisect") for _, a in calls)
    assert shortest_prefix(64, lambda n, a: 1.0, 0.5) is None  # not even every layer in float is within
    assert shortest_prefix(0, drop_of, 0.5) is None


def test_a_negative_budget_is_a_clear_error():
    from edgecc.errors import BadInputError
    from edgecc.graph.quantize.mixed import quantize_within_budget

    model = sensitive_mlp()
    data = _data(np.ones((8, 16), np.float32))
    with pytest.raises(BadInputError, match="maximum accuracy drop must be a finite number of points >= 0"):
        quantize_within_budget(model, data, data, -1.0)
