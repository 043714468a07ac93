"""Distillation fine-tuning: a pruned model trained to reproduce the original's outputs on unlabelled samples.

The teacher is what onnxruntime computes on the original model (the reference every rewrite is checked
against), once per sample before training. The student is the pruned model converted to torch
(:mod:`.bridge`); its convolution, Gemm and other float initializers are trained with Adam on a cosine
schedule to minimise, per output, the squared error normalised by the teacher's mean square, plus for
classifier-shaped outputs ([N, C], C > 1) the KL divergence of the softmaxes at a temperature (scaled by
T^2, as in Hinton et al. 2015). Training stops at the time budget, the epoch count or the step count,
whichever comes first; the schedule's cosine runs over the nearest of those bounds.

The trained tensors are written back into a copy of the pruned model, which is then run in onnxruntime
and compared with the torch student on the held-out samples (:data:`WRITEBACK_TOLERANCE`), so what is
returned is verified like every other rewrite.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx_ir as ir

from ...errors import BadInputError, VerificationError
from ...profiling.verify import OutputError, Tolerance, compare_outputs
from ...targets.host import available_cores
from .bridge import TorchModel, import_torch, to_torch, write_back

# torch and onnxruntime run the same float32 graph with different summation orders: ~1e-6 relative per
# layer. 1e-4 of the output range is far below any change of function and above that rounding.
WRITEBACK_TOLERANCE = Tolerance(min_cosine=0.99999, max_rel_error=1e-4)
DEFAULT_LR = 1e-3
DEFAULT_BATCH = 64
DEFAULT_TEMPERATURE = 4.0
#: the learning rate rises linearly over the first steps: Adam's first updates move every weight by about the
#: learning rate whatever its gradient, which on a recovered (already close) student raised the loss ~75x at step 2
WARMUP_STEPS = 20

Progress = Callable[[int, "int | None", float, float], None]


@dataclass
class FinetuneResult:
    """What fine-tuning did. Losses are the distillation loss on the held-out samples; errors are the
    held-out outputs' RMS difference from the teacher's, relative to the teacher's RMS (0 = identical), and
    agreement the share of held-out samples whose arg-max matches the teacher's (classifier outputs only)."""

    model: ir.Model
    steps: int
    epochs: float  # passes over the training samples, fractional
    seconds: float  # training loop only
    stopped_by: str  # "time_budget", "epochs" or "max_steps"
    train_samples: int
    held_out_samples: int
    batch_size: int
    loss_before: float
    loss_after: float
    error_before: float
    error_after: float
    agreement_before: float | None
    agreement_after: float | None
    writeback: OutputError  # onnxruntime on the written-back model against the torch student
    trained: list[str] = field(default_factory=list)
    frozen: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        keys = ("steps", "epochs", "seconds", "stopped_by", "train_samples", "held_out_samples", "batch_size",
                "loss_before", "loss_after", "error_before", "error_after", "agreement_before", "agreement_after")
        out: dict[str, object] = {k: getattr(self, k) for k in keys}
        out["writeback"] = {"max_abs_error": self.writeback.max_abs_error, "max_rel_error": self.writeback.max_rel_error,
                            "cosine": self.writeback.cosine, "tolerance_rel": WRITEBACK_TOLERANCE.max_rel_error}
        out["trained_initializers"] = len(self.trained)
        out["frozen"] = dict(self.frozen)
        return out


def _samples(batches: list[dict[str, np.ndarray]], names: list[str]) -> dict[str, np.ndarray]:
    if not batches:
        raise BadInputError("fine-tuning needs samples: the data holds none")
    missing = [n for n in names if n not in batches[0]]
    if missing:
        raise BadInputError(f"fine-tuning data lacks the model input(s) {', '.join(missing)}")
    arrays = {n: np.concatenate([np.asarray(b[n]) for b in batches]) for n in names}
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1:
        raise BadInputError(f"fine-tuning data: the inputs hold different sample counts {sorted(counts)}")
    return arrays


def _fixed_batch(model: ir.Model) -> int | None:
    dims = {v.shape[0] if v.shape is not None and len(v.shape) else None for v in model.graph.inputs}
    return next(iter(dims)) if len(dims) == 1 and isinstance(next(iter(dims)), int) else None


def _chunks(count: int, size: int):
    for start in range(0, count, size):
        idx = np.arange(start, start + size)
        yield np.minimum(idx, count - 1), min(size, count - start)  # the last chunk repeats its last sample


def _ort_outputs(model: ir.Model, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's outputs for every sample, in the model's output order, fed in its own batch size."""
    import onnxruntime as ort

    session = ort.InferenceSession(ir.serde.serialize_model(model).SerializeToString(), providers=["CPUExecutionProvider"])
    batch = _fixed_batch(model) or DEFAULT_BATCH
    count = len(next(iter(arrays.values())))
    parts: list[list[np.ndarray]] = []
    for idx, n in _chunks(count, batch):
        outs = session.run(None, {k: v[idx] for k, v in arrays.items()})
        parts.append([o[:n] for o in outs])
    return [np.concatenate(col) for col in zip(*parts)]


def _relative_error(outs: list[np.ndarray], ref: list[np.ndarray]) -> float:
    num = sum(float(np.sum((o.astype(np.float64) - r) ** 2)) for o, r in zip(outs, ref))
    den = sum(float(np.sum(r.astype(np.float64) ** 2)) for r in ref)
    return math.sqrt(num / den) if den > 0 else math.sqrt(num)


def _agreement(outs: list[np.ndarray], ref: list[np.ndarray]) -> float | None:
    pairs = [(o, r) for o, r in zip(outs, ref) if r.ndim == 2 and r.shape[1] > 1]
    if not pairs:
        return None
    return float(np.mean([np.mean(o.argmax(1) == r.argmax(1)) for o, r in pairs]))


class _Distiller:
    """The torch side: the student, the loss and its evaluation in batches."""

    def __init__(self, torch: Any, student: TorchModel, inputs: list[str], scales: list[float], temperature: float):
        self.torch, self.student, self.inputs = torch, student, inputs
        self.scales, self.temperature = scales, temperature

    def forward(self, arrays: dict[str, np.ndarray], idx: np.ndarray) -> list[Any]:
        out = self.student.module(*[self.torch.from_numpy(np.ascontiguousarray(arrays[n][idx])) for n in self.inputs])
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(outs) != len(self.scales):
            raise BadInputError(f"the torch form of the model gives {len(outs)} outputs, the model {len(self.scales)}")
        return outs

    def loss(self, outs: list[Any], targets: list[Any]) -> Any:
        F, t = self.torch.nn.functional, self.temperature
        total = 0
        for s, ref, scale in zip(outs, targets, self.scales):
            total = total + F.mse_loss(s, ref) / scale
            if ref.dim() == 2 and ref.shape[1] > 1:
                total = total + F.kl_div(F.log_softmax(s / t, 1), F.log_softmax(ref / t, 1), reduction="batchmean",
                                         log_target=True) * t * t
        return total

    def evaluate(self, arrays: dict[str, np.ndarray], teacher: list[np.ndarray], batch: int) -> tuple[float, list[np.ndarray]]:
        """Mean loss over all samples of ``arrays`` and the student's outputs (numpy)."""
        count, losses, parts = len(teacher[0]), [], []
        with self.torch.no_grad():
            for idx, n in _chunks(count, batch):
                outs = self.forward(arrays, idx)
                losses.append(float(self.loss(outs, [self.torch.from_numpy(r[idx]) for r in teacher])) * n)
                parts.append([o.numpy()[:n] for o in outs])
        return sum(losses) / count, [np.concatenate(col) for col in zip(*parts)]


def _usable_batch(distiller: _Distiller, arrays: dict[str, np.ndarray], wanted: int, fixed: int | None) -> int:
    """``wanted`` when the torch student runs batches of that size, else the model's own fixed batch."""
    if fixed is None or fixed == wanted:
        return wanted
    try:
        with distiller.torch.no_grad():
            outs = distiller.forward(arrays, np.zeros(wanted, dtype=np.int64))
        if all(o.shape[0] == wanted for o in outs):
            return wanted
    except RuntimeError:
        pass  # a Reshape to the exported batch size: train in that batch size
    return fixed


@dataclass
class _Loop:
    steps: int = 0
    seconds: float = 0.0
    stopped_by: str = "time_budget"


def _train(d: _Distiller, arrays: dict[str, np.ndarray], teacher: list[np.ndarray], *, batch: int, lr: float,
           time_budget_s: float, epochs: int | None, max_steps: int | None, seed: int, progress: Progress | None) -> _Loop:
    torch = d.torch
    params = [t.tensor for t in d.student.tied]
    optimiser = torch.optim.Adam(params, lr=lr)
    count = len(teacher[0])
    per_epoch = math.ceil(count / batch)
    bounds = [b for b in (epochs * per_epoch if epochs is not None else None, max_steps) if b is not None]
    total = min(bounds) if bounds else None
    rng = np.random.default_rng(seed)
    targets = [torch.from_numpy(r) for r in teacher]
    loop, start = _Loop(), time.perf_counter()
    while params:
        order = rng.permutation(count)
        for k in range(per_epoch):
            elapsed = time.perf_counter() - start
            if total is not None and loop.steps >= total:
                loop.stopped_by = "epochs" if epochs is not None and total == epochs * per_epoch else "max_steps"
                break
            if elapsed >= time_budget_s:
                loop.stopped_by = "time_budget"
                break
            fraction = max(elapsed / time_budget_s, loop.steps / total if total else 0.0)
            for group in optimiser.param_groups:
                group["lr"] = lr * min(1.0, (loop.steps + 1) / WARMUP_STEPS) * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction)))
            idx = order[(np.arange(batch) + k * batch) % count]
            optimiser.zero_grad(set_to_none=True)
            loss = d.loss(d.forward(arrays, idx), [t[idx] for t in targets])
            loss.backward()
            optimiser.step()
            loop.steps += 1
            if progress is not None:
                progress(loop.steps, total, loss.item(), time.perf_counter() - start)
        else:
            continue
        break
    loop.seconds = time.perf_counter() - start
    return loop


def finetune_distill(
    teacher: ir.Model,
    student: ir.Model,
    batches: list[dict[str, np.ndarray]],
    *,
    time_budget_s: float,
    epochs: int | None = None,
    max_steps: int | None = None,
    lr: float = DEFAULT_LR,
    batch_size: int = DEFAULT_BATCH,
    temperature: float = DEFAULT_TEMPERATURE,
    held_out: float = 0.1,
    seed: int = 0,
    threads: int | None = None,
    progress: Progress | None = None,
) -> FinetuneResult:
    """Train ``student`` (a pruned ``teacher``; not modified) to reproduce ``teacher``'s outputs on the
    unlabelled samples of ``batches`` (feeds as edgecc.data gives them; every row is used). A ``held_out``
    share of the samples (seeded) is kept out of training and measures the result.

    Stops after ``time_budget_s`` seconds of training, ``epochs`` passes or ``max_steps`` steps, whichever
    comes first. ``progress(step, total or None, loss, seconds)`` is called after every step. torch uses
    ``threads`` threads (default: the cores this process may run on). Returns the
    fine-tuned copy of ``student`` and the figures; MissingExtra (exit 3) without torch, VerificationError
    when the written-back model does not reproduce the torch student within WRITEBACK_TOLERANCE."""
    torch = import_torch()
    if time_budget_s < 0 or (epochs is not None and epochs < 0) or (max_steps is not None and max_steps < 0):
        raise BadInputError("fine-tuning: the time budget, epochs and steps must not be negative")
    if batch_size < 1 or not 0 <= held_out < 1 or temperature <= 0 or lr <= 0:
        raise BadInputError("fine-tuning: batch size >= 1, 0 <= held-out share < 1, temperature > 0 and lr > 0")
    names = [v.name for v in student.graph.inputs]
    if [v.name for v in teacher.graph.inputs] != names or len(teacher.graph.outputs) != len(student.graph.outputs):
        raise BadInputError("fine-tuning: the student's inputs and outputs must be the teacher's")
    torch.set_num_threads(threads or available_cores())
    torch.manual_seed(seed)
    arrays = _samples(batches, names)
    count = len(arrays[names[0]])
    order = np.random.default_rng(seed).permutation(count)
    n_held = min(count - 1, max(1, round(count * held_out))) if held_out > 0 and count > 1 else 0
    train = {k: v[order[n_held:]] for k, v in arrays.items()}
    held = {k: v[order[:n_held]] for k, v in arrays.items()} if n_held else train
    teacher_train, teacher_held = _ort_outputs(teacher, train), _ort_outputs(teacher, held)
    model = ir.from_proto(ir.to_proto(student))  # the copy that is trained and returned
    student_before = _ort_outputs(model, held)
    scales = [max(float(np.mean(r.astype(np.float64) ** 2)), 1e-12) for r in teacher_train]
    d = _Distiller(torch, to_torch(model, train=True), names, scales, temperature)
    batch = _usable_batch(d, train, batch_size, _fixed_batch(model))
    loss_before, _ = d.evaluate(held, teacher_held, batch)
    loop = _train(d, train, teacher_train, batch=batch, lr=lr, time_budget_s=time_budget_s, epochs=epochs,
                  max_steps=max_steps, seed=seed, progress=progress)
    loss_after, torch_held = d.evaluate(held, teacher_held, batch)
    write_back(d.student)
    after = _ort_outputs(model, held)
    names_out = [v.name or str(i) for i, v in enumerate(model.graph.outputs)]
    wb = compare_outputs(dict(zip(names_out, torch_held)), dict(zip(names_out, after)))
    if not wb.within(WRITEBACK_TOLERANCE):
        raise VerificationError(
            f"fine-tuned weights written back to ONNX give outputs {wb.max_abs_error:.3g} from the torch model's "
            f"({wb.max_rel_error:.3g} of the output range, max {WRITEBACK_TOLERANCE.max_rel_error:g}; cosine {wb.cosine:.7f})")
    return FinetuneResult(
        model=model, steps=loop.steps, epochs=loop.steps * batch / len(teacher_train[0]), seconds=loop.seconds,
        stopped_by=loop.stopped_by, train_samples=len(teacher_train[0]), held_out_samples=n_held, batch_size=batch,
        loss_before=loss_before, loss_after=loss_after,
        error_before=_relative_error(student_before, teacher_held), error_after=_relative_error(after, teacher_held),
        agreement_before=_agreement(student_before, teacher_held), agreement_after=_agreement(after, teacher_held),
        writeback=wb, trained=[t.initializer.name or "?" for t in d.student.tied], frozen=d.student.frozen,
    )
