"""Host-driven evaluation of a built project on its device, checked against the host build.

:func:`evaluate` streams every input through the device (QEMU or a board) and through the
host reference runner (same model C, same core, host ``cc``), then reports top-1 accuracy of
both, whether every device output is byte-identical to the host's, the firmware's static
memory (from the ELF) and painted stack high-water, and the instruction (or cycle) count of
each inference.

Inputs: one array per model input with a leading sample axis, e.g. ``(N, 1, 28, 28)`` for an
input of shape ``[1, 1, 28, 28]`` (batch 1 dropped or kept). Float data for an int8/int32
input with quant parameters is quantized as ``clip(round(x / scale) + zero_point)``
(round half to even, as numpy).

Memory: ``peak_sram_bytes`` = static RAM (.data + .bss, model arena included) + stack
high-water on bare metal; on Zephyr thread stacks are static (.noinit), so peak = static.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from tvm_mcuformer.micro import MicroError, elf
from tvm_mcuformer.micro.journal import RunJournal, SampleRecord, fingerprint
from tvm_mcuformer.micro.project import Project, TensorSpec, load_project
from tvm_mcuformer.micro.transport import DEFAULT_TIMEOUT, check_info, open_device, start_host

ARENA_SYMBOL = "mcuformer_arena"
PROGRESS_EVERY = 100
QEMU_INSTRUCTIONS_PER_TICK = 40  # -icount shift=0 (1 ns per instruction), 25 MHz timer


def sample_shape(spec: TensorSpec) -> tuple[int, ...]:
    """Shape of one sample of ``spec``: its shape without a leading batch dimension of 1."""
    return spec.shape[1:] if len(spec.shape) > 1 and spec.shape[0] == 1 else spec.shape


def _to_dtype(name: str, array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array.reshape(len(array), -1)))[0][0]
        raise MicroError(f"input {name!r}: sample {bad} holds NaN or Inf: clean the data")
    if dtype.kind == "f":
        if array.dtype.kind not in "biuf":
            raise MicroError(f"input {name!r}: dtype {array.dtype} is not numeric")
        return array.astype(dtype)
    info = np.iinfo(dtype)
    if array.dtype.kind == "f":
        if spec.scale is None:
            raise MicroError(
                f"input {name!r} is {spec.dtype} without quant parameters in metadata.json: "
                f"pass {spec.dtype} data, not {array.dtype}"
            )
        return spec.quantize(array)
    if array.dtype.kind not in "biu":
        raise MicroError(f"input {name!r}: dtype {array.dtype} is not numeric")
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise MicroError(f"input {name!r}: values outside the {spec.dtype} range")
    return array.astype(dtype)


def encode_inputs(
    specs: tuple[TensorSpec, ...], inputs: dict[str, np.ndarray] | np.ndarray, limit: int | None
) -> list[bytes]:
    """Turn per-input arrays into one request payload per sample (inputs concatenated)."""
    if not isinstance(inputs, dict):
        if len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise MicroError(f"the model has {len(specs)} inputs ({names}): pass them by name")
        inputs = {specs[0].name: inputs}
    missing = [s.name for s in specs if s.name not in inputs]
    if missing:
        raise MicroError(
            f"missing model input(s) {', '.join(missing)}; given: {', '.join(inputs) or 'none'}"
        )
    columns, count = [], None
    for spec in specs:
        array = np.asarray(inputs[spec.name])
        if array.ndim == 0 or array.shape[1:] not in (sample_shape(spec), spec.shape):
            raise MicroError(
                f"input {spec.name!r} has shape {array.shape}; expected "
                f"(N, {', '.join(map(str, sample_shape(spec)))}) for model shape {list(spec.shape)}"
            )
        if count is not None and len(array) != count:
            raise MicroError(f"inputs have different sample counts ({count} and {len(array)})")
        count = len(array)
        columns.append(_to_dtype(spec.name, array[:limit], spec).reshape(len(array[:limit]), -1))
    n = len(columns[0])
    if n == 0:
        raise MicroError("no input samples to run")
    return [b"".join(np.ascontiguousarray(c[i]).tobytes() for c in columns) for i in range(n)]


def decode_outputs(specs: tuple[TensorSpec, ...], frames: list[bytes]) -> dict[str, np.ndarray]:
    """Split output payloads into one ``(N, *sample_shape)`` array per model output."""
    raw = np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(len(frames), -1)
    outputs, offset = {}, 0
    for spec in specs:
        block = np.ascontiguousarray(raw[:, offset : offset + spec.nbytes])
        outputs[spec.name] = block.view(spec.dtype).reshape(len(frames), *sample_shape(spec))
        offset += spec.nbytes
    return outputs


def check_labels(labels: np.ndarray, n: int, spec: TensorSpec) -> np.ndarray:
    """The first ``n`` labels as int64 class indices of output ``spec``, or ``MicroError``."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        labels = labels.reshape(-1) if labels.size == len(labels) else labels
    if labels.ndim != 1:
        raise MicroError(f"labels have shape {labels.shape}: give one class index per sample")
    if len(labels) < n:
        raise MicroError(f"{len(labels)} labels for {n} samples")
    labels = labels[:n]
    if labels.dtype.kind not in "biuf" or (
        labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels)))
    ):
        raise MicroError(f"labels must be whole class indices, got dtype {labels.dtype}")
    classes = int(np.prod(sample_shape(spec)))
    outside = (labels < 0) | (labels >= classes)
    if outside.any():
        i = int(np.argmax(outside))
        raise MicroError(
            f"label {labels[i]} of sample {i} is outside the model's {classes} classes "
            f"(0..{classes - 1}): check the labels match this model"
        )
    return labels.astype(np.int64)


def _top1(outputs: dict[str, np.ndarray], spec: TensorSpec, labels: np.ndarray | None):
    if labels is None:
        return None
    predicted = outputs[spec.name].reshape(len(labels), -1).argmax(axis=1)
    return float(np.mean(predicted == labels))


# The compiler's memory report, carried into the device report beside what was measured.
COMPILE_MEMORY_KEYS = (
    "planned_arena_bytes",
    "lower_bound_bytes",
    "tvm_static_plan_bytes",
    "naive_bytes",
    "paper_m_bytes",
    "weight_bytes",
    "token_overwrite_layers",
    "patch_decomposition_field",
)


def _memory_report(project: Project, stack_used: int) -> dict:
    usage = elf.measure(project.firmware)
    arena = elf.symbol_sizes(project.firmware).get(ARENA_SYMBOL)
    planned = project.metadata.get("memory", {})
    budget = project.budget
    peak = usage.static_ram_bytes + (stack_used if usage.stack_reserved_bytes else 0)
    reserved = usage.static_ram_bytes + usage.stack_reserved_bytes
    return {
        **{key: planned.get(key) for key in COMPILE_MEMORY_KEYS},
        "measured": {
            "static_ram_bytes": usage.static_ram_bytes,
            "stack_bytes": stack_used,
            "stack_reserved_bytes": usage.stack_reserved_bytes,
            "peak_sram_bytes": peak,
            "reserved_sram_bytes": reserved,
            "arena_symbol_bytes": arena,
        },
        "flash_bytes": usage.flash_bytes,
        "budget": budget,
        "fits_budget": (
            reserved <= budget["sram_bytes"] and usage.flash_bytes <= budget["flash_bytes"]
        ),
    }


def _latency_report(counter: str | None, counts: np.ndarray, macs: int | None) -> dict:
    report: dict = {"counter": counter, "macs": macs}
    if counter is None:
        return report
    mean = float(counts.mean())
    report[f"{counter}_per_inference"] = mean
    report[f"{counter}_min"] = int(counts.min())
    report[f"{counter}_max"] = int(counts.max())
    if counter == "instructions":
        report["resolution_instructions"] = QEMU_INSTRUCTIONS_PER_TICK
    if macs:
        report[f"{counter}_per_mac"] = mean / macs
    return report


def per_op_latency(profile: list[int], ops: list[dict]) -> list[dict]:
    """Counter per kernel call of the last inference, from the firmware's cumulative marks.

    ``ops`` is the artifact's per-call metadata (kernel name, outputs); one row per call:
    ``{"call", "kernel", "outputs", "count"}``.
    """
    rows, previous = [], 0
    for i, mark in enumerate(profile):
        op = ops[i] if i < len(ops) else {}
        rows.append(
            {
                "call": i,
                "kernel": op.get("kernel"),
                "outputs": op.get("outputs", []),
                "count": mark - previous,
            }
        )
        previous = mark
    return rows


def evaluate(
    project_dir: str | Path,
    inputs: dict[str, np.ndarray] | np.ndarray,
    labels: np.ndarray | None,
    limit: int | None = None,
    progress: bool = True,
    *,
    port: str | None = None,
    baud: int = 115200,
    timeout: float = DEFAULT_TIMEOUT,
    journal: str | Path | None = None,
    resume: bool = False,
) -> dict:
    """Run ``inputs`` (first ``limit`` samples) on the project's device and the host build.

    Returns the report (JSON-serialisable) plus ``"outputs"``: the device outputs as
    ``{output name: array (N, ...)}``. ``port``/``baud`` select a Zephyr board's UART.
    Progress goes to stderr every 100 frames when ``progress`` is set. With ``journal`` (a
    path, see :mod:`~tvm_mcuformer.micro.journal`) every completed sample is recorded as it
    finishes; ``resume`` continues from that journal. The caller removes the journal once
    the report is safely written. Only the wall-clock fields differ from an uninterrupted run.
    """
    project = load_project(project_dir)
    if limit is not None and limit < 1:
        raise MicroError(f"--limit {limit}: give a positive number of samples")
    frames = encode_inputs(project.inputs, inputs, limit)
    n = len(frames)
    if labels is not None:
        labels = check_labels(labels, n, project.outputs[0])
    for path, what in ((project.firmware, "firmware"), (project.host_runner, "host runner")):
        if not path.is_file():
            raise MicroError(f"{what} {path} not found: run `tvm-mcuformer micro build` first")
    if journal is not None:
        key = fingerprint([project.firmware, project.host_runner], frames)
        log = RunJournal.open(journal, key, n, resume)
    else:
        log = RunJournal(None, "", n, [])  # in memory only
    resumed_at = len(log.done)
    if progress and resumed_at:
        print(f"run: resuming after sample {resumed_at}/{n}", file=sys.stderr, flush=True)

    start = time.monotonic()
    try:
        with (
            open_device(project, port, baud, timeout) as device,
            start_host(project.host_runner, timeout) as host,
        ):
            for session in (device, host):
                check_info(session.info, project, session.name)
            for i in range(resumed_at, n):
                device_seq, host_seq = device.send_infer(frames[i]), host.send_infer(frames[i])
                got, ref = device.receive_infer(device_seq), host.receive_infer(host_seq)
                for result, name in ((got, device.name), (ref, host.name)):
                    if result.status != 0:
                        raise MicroError(
                            f"model returned status {result.status} on {name}, sample {i}"
                        )
                log.append(SampleRecord(i, got.output, ref.output, got.count, got.stack_used_bytes))
                done = i + 1
                if progress and (done % PROGRESS_EVERY == 0 or done == n) and n >= PROGRESS_EVERY:
                    rate = (done - resumed_at) / (time.monotonic() - start)
                    print(f"run: {done}/{n} samples, {rate:.0f}/s", file=sys.stderr, flush=True)
            counter, device_name = device.info.counter, device.name
            profile = []
            if counter is not None and n:
                if resumed_at == n:  # every sample was journaled: rerun the last for its profile
                    device.infer(frames[-1])
                profile = device.request_profile()
    finally:
        log.close()
    wall = time.monotonic() - start
    device_out = [r.device for r in log.done]
    host_out = [r.host for r in log.done]
    counts = np.array([r.count for r in log.done], dtype=np.int64)
    stack_used = max(r.stack for r in log.done)

    outputs = decode_outputs(project.outputs, device_out)
    host_outputs = decode_outputs(project.outputs, host_out)
    mismatched = sum(a != b for a, b in zip(device_out, host_out, strict=True))
    first = project.outputs[0]
    return {
        "project": str(project.root),
        "platform": project.platform,
        "board": project.board,
        "device": device_name,
        "float_abi": project.float_abi,
        "accuracy": {
            "n": n,
            "device_top1": _top1(outputs, first, labels),
            "host_top1": _top1(host_outputs, first, labels),
            "device_equals_host": mismatched == 0,
            "mismatched_samples": mismatched,
        },
        "memory": _memory_report(project, stack_used),
        "latency": {
            **_latency_report(counter, counts, project.metadata.get("macs")),
            "per_op": per_op_latency(profile, project.metadata.get("ops", [])),
            "wall_seconds": wall,
            "inferences_per_second_host": (n - resumed_at) / wall if wall > 0 else None,
        },
        "outputs": outputs,
    }
