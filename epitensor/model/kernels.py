"""Which matrix-multiply path trains and imputes fastest on this CPU, chosen by measurement.

The dense layers are almost all of the network's arithmetic, and which kernel runs them fastest
depends on the CPU, not on a rule: torch's default fp32 path (MKL) uses less than half of some AMD
CPUs that oneDNN drives well, and bf16 is several times faster where the CPU has bf16 instructions
(avx512_bf16, AMX) but far slower where it has to emulate them. Three paths exist:

``"fp32"``
    torch's own fp32 kernels (MKL on x86). The reference point: every other path is checked
    against it.
``"onednn"``
    fp32 dense layers through oneDNN (``torch.ops.mkldnn._linear_pointwise``, with the ReLU fused;
    the weight gradient stays on torch's kernel). Same arithmetic in another summation order:
    predictions agree with fp32 to about 1e-5 relative (:data:`TOLERANCE`).
``"bf16"``
    ``torch.autocast(bfloat16)`` around the network with fp32 master weights, as on CUDA. Inputs
    of each product are rounded to 8 significant bits: predictions agree with fp32 to about 1e-2
    relative.

:func:`probe` times one training step of a dense stack of the model's widths with each path the
machine supports, well under a second, and :func:`choose_path` keeps fp32 unless another path is
clearly faster. The answer is cached per CPU model, instruction sets, torch version, thread count
and layer shape (in memory and in a JSON file, see :func:`cache_file`), so a machine measures once.
``AvocadoConfig(cpu_kernels=...)`` or the environment variable ``EPITENSOR_CPU_KERNELS`` force a
path; ``autocast=True`` forces ``"bf16"``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from ..exceptions import ModelError
from .config import CPU_KERNEL_PATHS as PATHS

#: Largest relative difference from the fp32 path's predictions, per path (the tests check them).
TOLERANCE = {"fp32": 0.0, "onednn": 1e-4, "bf16": 3e-2}
#: Another path is chosen only when its step takes at most this fraction of the fp32 step.
MARGIN = 0.9
ENVIRONMENT_VARIABLE = "EPITENSOR_CPU_KERNELS"
#: Networks with fewer multiply-adds per sample than this are not probed (fp32): the embedding
#: lookups and the optimiser, not the matrix products, take their time.
SMALL_NETWORK_MACS = 50_000
_ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
_ONEDNN = contextvars.ContextVar("epitensor_onednn_dense", default=False)
_memo: dict[str, KernelChoice] = {}


@dataclass(frozen=True)
class KernelChoice:
    """The CPU path chosen for one layer shape and why.

    Attributes
    ----------
    path : str
        One of :data:`PATHS`.
    reason : str
        One line: forced by whom, or the probe's step times.
    timings : dict
        Seconds per probe step of each measured path (empty when forced).
    """

    path: str
    reason: str
    timings: dict

    def describe(self) -> str:
        return f"CPU kernels: {self.path} ({self.reason})"


# ---------------------------------------------------------------------- the machine
def cpu_description() -> dict:
    """CPU model, the instruction sets that matter for matrix products, torch version and threads.

    Examples
    --------
    >>> from epitensor.model.kernels import cpu_description
    >>> sorted(cpu_description())
    ['bf16_supported', 'instructions', 'model', 'threads', 'torch']
    """
    return {**_machine(), "torch": torch.__version__, "threads": torch.get_num_threads()}


@functools.cache
def _machine() -> dict:
    """What does not change while the process runs: the CPU model, its instruction sets, bf16."""
    fields = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    return {"model": model, "instructions": [f for f in _ISA_FLAGS if f in flags], "bf16_supported": _bf16_native()}


def _bf16_native() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def onednn_available() -> bool:
    """Whether this torch build has oneDNN's fp32 linear kernel."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        x = torch.ones(2, 3)
        torch.ops.mkldnn._linear_pointwise(x, torch.ones(4, 3), None, "none", [], "")
    except (AttributeError, RuntimeError):
        return False
    return True


def available_paths() -> tuple[str, ...]:
    """The paths worth measuring here: bf16 only where the CPU has bf16 instructions (it runs
    everywhere, emulated, but then it is several times slower than fp32)."""
    paths = ["fp32"]
    if onednn_available():
        paths.append("onednn")
    if _machine()["bf16_supported"]:
        paths.append("bf16")
    return tuple(paths)


# ---------------------------------------------------------------------- the oneDNN dense layer
class _OneDNNLinear(torch.autograd.Function):
    """y = [ReLU](x W^T + b) with oneDNN's fp32 kernel forward and for the input gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias, relu: bool):
        y = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu" if relu else "none", [], "")
        ctx.relu = relu
        ctx.save_for_backward(x, weight, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, y = ctx.saved_tensors
        if ctx.relu:
            grad = torch.where(y > 0, grad, 0.0)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.mkldnn._linear_pointwise(grad, weight.t().contiguous(), None, "none", [], "")
        if ctx.needs_input_grad[1]:
            grad_w = grad.t() @ x
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b, None


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, relu: bool = False) -> torch.Tensor:
    """``relu(F.linear(x, weight, bias))`` (or without the ReLU) through oneDNN; any leading shape.

    Examples
    --------
    >>> import torch
    >>> from epitensor.model.kernels import onednn_available, onednn_linear
    >>> x, w, b = torch.randn(5, 3), torch.randn(4, 3), torch.randn(4)
    >>> not onednn_available() or torch.allclose(onednn_linear(x, w, b, relu=True),
    ...                                          torch.relu(x @ w.t() + b), atol=1e-5)
    True
    """
    lead = x.shape[:-1]
    y = _OneDNNLinear.apply(x.reshape(-1, x.shape[-1]), weight, bias, relu)
    return y.reshape(*lead, weight.shape[0])


def onednn_dense_active() -> bool:
    """Whether the network's dense layers should run through :func:`onednn_linear` now."""
    return _ONEDNN.get()


def kernel_context(device, path):
    """Context in which the network runs with ``path`` (a name of :data:`PATHS`; ``True`` and
    ``False`` mean ``"bf16"`` and ``"fp32"``). On CUDA, ``"bf16"`` is autocast and the rest fp32.

    Examples
    --------
    >>> from epitensor.model.kernels import kernel_context, onednn_dense_active
    >>> with kernel_context("cpu", "onednn"):
    ...     onednn_dense_active()
    True
    >>> onednn_dense_active()
    False
    """
    device_type = torch.device(device).type
    if path is True or path == "bf16":
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    if path == "onednn" and device_type == "cpu":
        return _onednn_scope()
    return contextlib.nullcontext()


@contextlib.contextmanager
def _onednn_scope():
    token = _ONEDNN.set(True)
    try:
        yield
    finally:
        _ONEDNN.reset(token)


# ---------------------------------------------------------------------- choosing
def choose_path(timings: dict, margin: float = MARGIN) -> str:
    """The path to use given seconds per step of each measured path: the fastest one whose step
    takes at most ``margin`` x the fp32 step, else ``"fp32"``. Ties go to the earlier path of
    :data:`PATHS`. A pure function of its arguments.

    Examples
    --------
    >>> from epitensor.model.kernels import choose_path
    >>> choose_path({"fp32": 1.0, "onednn": 0.5, "bf16": 0.3})
    'bf16'
    >>> choose_path({"fp32": 1.0, "onednn": 0.95})
    'fp32'
    """
    if "fp32" not in timings:
        raise ModelError(f"the CPU kernel timings must include fp32, got {sorted(timings)}")
    fast = [(t, PATHS.index(p), p) for p, t in timings.items() if p != "fp32" and t <= margin * timings["fp32"]]
    return min(fast)[2] if fast else "fp32"


def network_macs(n_input: int, n_nodes: int, n_layers: int) -> int:
    """Multiply-adds of the dense network per sample."""
    if n_layers < 1:
        return n_input
    return n_input * n_nodes + (n_layers - 1) * n_nodes * n_nodes + n_nodes


def probe_rows(n_input: int, n_nodes: int, n_layers: int) -> int:
    """Samples per probe step: about 8 GFLOP of training work, between 128 and 8,192 samples.

    Which kernel wins depends on the number of rows of the products: a probe with a few hundred
    rows can rank the paths the other way round from a 40,000-sample training batch, so a narrow
    network is probed with as many rows as the time allows.
    """
    return int(min(8192, max(128, 8e9 // (6 * network_macs(n_input, n_nodes, n_layers)))))


def measure_paths(n_input: int, n_nodes: int, n_layers: int, paths=None, repeats: int = 2) -> dict:
    """Seconds per training step (forward, backward) of ``n_layers`` Dense(ReLU) layers of the
    model's widths and the linear output, for each path: the best of ``repeats`` steps after a
    warm-up, the paths taking turns so that a change in load hits them alike."""
    paths = available_paths() if paths is None else tuple(paths)
    rows = probe_rows(n_input, n_nodes, n_layers)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, n_input, generator=gen)
    widths = [n_input] + [n_nodes] * max(n_layers, 0)
    weights = [(torch.randn(o, i, generator=gen) / i**0.5).requires_grad_() for i, o in zip(widths, widths[1:] + [1])]
    biases = [torch.zeros(w.shape[0], requires_grad=True) for w in weights]

    def step(path: str) -> float:
        start = time.perf_counter()
        with kernel_context("cpu", path):
            h = x
            for i, (w, b) in enumerate(zip(weights, biases)):
                hidden = i < len(weights) - 1
                if onednn_dense_active() and hidden:
                    h = onednn_linear(h, w, b, relu=True)
                else:
                    h = F.linear(h, w, b)
                    h = torch.relu(h) if hidden else h
            loss = h.float().square().mean()
        loss.backward()
        return time.perf_counter() - start

    timings = {p: float("inf") for p in paths}
    for r in range(repeats + 1):
        for path in paths:
            seconds = step(path)
            if r:
                timings[path] = min(timings[path], seconds)
    return timings


def cache_file() -> Path:
    """Where probe results are kept: ``$EPITENSOR_CACHE_DIR/cpu_kernels.json``, else
    ``$XDG_CACHE_HOME/epitensor/`` or ``~/.cache/epitensor/``."""
    root = os.environ.get("EPITENSOR_CACHE_DIR")
    if root:
        return Path(root) / "cpu_kernels.json"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "epitensor" / "cpu_kernels.json"


def _cache_key(cpu: dict, n_input: int, n_nodes: int, n_layers: int) -> str:
    return (f"{cpu['model']}|{','.join(cpu['instructions'])}|torch {cpu['torch']}|{cpu['threads']} threads|"
            f"{n_input}-{n_nodes}x{n_layers}")


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, entries: dict) -> None:
    """Atomic replace; a cache that cannot be written (read-only home) only costs a probe next time."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
        os.replace(tmp, path)


def probe(n_input: int, n_nodes: int, n_layers: int, *, use_cache: bool = True) -> KernelChoice:
    """Measure the paths for this layer shape (or read the cached measurement) and choose one.

    Examples
    --------
    >>> from epitensor.model.kernels import probe
    >>> probe(398, 256, 2, use_cache=False).path in ("fp32", "onednn", "bf16")
    True
    >>> probe(8, 16, 2).reason
    'a 2 x 16 network is too small for the kernel to matter'

    """
    if network_macs(n_input, n_nodes, n_layers) < SMALL_NETWORK_MACS:
        return KernelChoice("fp32", f"a {n_layers} x {n_nodes} network is too small for the kernel to matter", {})
    cpu = cpu_description()
    key = _cache_key(cpu, n_input, n_nodes, n_layers)
    if use_cache and key in _memo:
        return _memo[key]
    path = cache_file()
    entries = _read_cache(path) if use_cache else {}
    timings = entries.get(key, {}).get("timings") if isinstance(entries.get(key), dict) else None
    cached = bool(timings) and all(isinstance(v, (int, float)) for v in timings.values()) and "fp32" in timings
    if not cached:
        timings = measure_paths(n_input, n_nodes, n_layers)
    chosen = choose_path(timings)
    steps = ", ".join(f"{p} {t * 1e3:.1f} ms" for p, t in timings.items())
    missing = "" if "bf16" in timings else "; bf16 not measured (no bf16 instructions)"
    reason = (f"{'cached ' if cached else ''}probe on {cpu['model']}, torch {cpu['torch']}, {cpu['threads']} threads: "
              f"{steps} per {probe_rows(n_input, n_nodes, n_layers)}-sample step of {n_layers} x {n_nodes}{missing}")
    choice = KernelChoice(chosen, reason, dict(timings))
    if use_cache:
        _memo[key] = choice
        if not cached:
            entries[key] = {"timings": timings, "chosen": chosen, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
            _write_cache(path, entries)
    return choice


def resolve_cpu_path(requested: str, autocast, n_input: int, n_nodes: int, n_layers: int) -> KernelChoice:
    """The path for a model on CPU: ``autocast=True`` means bf16, a named ``requested`` path (or
    ``$EPITENSOR_CPU_KERNELS`` when ``requested`` is "auto") is used as is, else :func:`probe`."""
    if autocast is True:
        if requested not in ("auto", "bf16"):
            raise ModelError(f"autocast=True is the bf16 path, but cpu_kernels={requested!r} was asked for; "
                             "set one of them")
        return KernelChoice("bf16", "autocast=True", {})
    if autocast is False and requested == "auto":
        return KernelChoice("fp32", "autocast=False", {})
    source = "cpu_kernels"
    if requested == "auto" and os.environ.get(ENVIRONMENT_VARIABLE):
        requested, source = os.environ[ENVIRONMENT_VARIABLE].strip(), f"${ENVIRONMENT_VARIABLE}"
    if requested == "auto":
        return probe(n_input, n_nodes, n_layers)
    if requested not in PATHS:
        raise ModelError(f"{source}={requested!r} is not a CPU kernel path; use 'auto' or one of {', '.join(PATHS)}")
    if requested == "onednn" and not onednn_available():
        raise ModelError(f"{source}='onednn' was asked for, but this torch build has no oneDNN linear kernel; "
                         "use 'fp32' or 'auto'")
    if autocast is False and requested == "bf16":
        raise ModelError("cpu_kernels='bf16' is autocast, but autocast=False was asked for; set one of them")
    return KernelChoice(requested, f"forced by {source}", {})
