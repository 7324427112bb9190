"""Shared fixtures: real-data locations, small stores, and a dask scheduler that forbids computing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dask
import pytest
import torch

import epitensor as et

# The suite runs the network on torch's fp32 kernels everywhere (subprocesses and dask workers
# inherit this), so results compare across processes; tests/test_cpu_kernels.py covers the others.
os.environ.setdefault("EPITENSOR_CPU_KERNELS", "fp32")

#: The repository's root and the tests' fixture files (the tests sit one folder below tests/).
REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"

#: The real data folder: ``$EPITENSOR_DATA`` (what the package and the Makefile use), else ../shared/data.
SHARED_DATA = Path(os.environ.get("EPITENSOR_DATA") or REPO.parent / "shared" / "data")


def shared_path(*parts) -> Path:
    """A path under ../shared/data, skipping the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (clone with ../shared beside the repo)")
    return path


#: Devices of the ``device`` fixture: the CPU always; CUDA marked ``cuda`` (so ``pytest -m cuda`` selects
#: it, as benchmarks/gpu_check.py does on a GPU machine) and skipped without a GPU.
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda,
                                              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")])]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """The device a model test trains and imputes on (see :data:`DEVICES`)."""
    return request.param


@pytest.fixture
def roadmap_dir() -> Path:
    return shared_path("roadmap_pilot")


@pytest.fixture
def bigwig_dir() -> Path:
    return shared_path("bigwig")


@pytest.fixture
def encode_core() -> Path:
    return shared_path("encode", "ENCODE2018Core.tsv")


@pytest.fixture
def annotations_dir() -> Path:
    return shared_path("annotations")


@pytest.fixture
def small_ds(tmp_path):
    """A small synthetic store: 6 biosamples x 4 assays x 20,000 bins, half the tracks observed."""
    return et.datasets.synthetic(tmp_path / "small.zarr", n_biosamples=6, n_assays=4, n_positions=20_000, missing=0.5, seed=3)


def store_digest(path) -> dict[str, str]:
    """Relative path -> sha256 of every file of a store (the strongest 'identical' there is)."""
    path = Path(path)
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.rglob("*")) if f.is_file()}


#: Contigs of :func:`tiny_genome` (odd lengths: the last bin and the last chunk of each are partial).
TINY_CHROMS = {"chr1": 60_013, "chr2": 30_007}


@pytest.fixture(scope="session")
def tiny_genome() -> et.Genome:
    """Two small contigs of :data:`TINY_CHROMS` in chunks of 1,000 bins."""
    return et.Genome("test", list(TINY_CHROMS), list(TINY_CHROMS.values()), chunk_bins=1_000)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """A synthetic store of 4 biosamples x 3 assays x 8,000 bins, 30% of the tracks missing.

    Shared by the whole session: read it, never write into it (use ``small_ds`` or a store of
    your own for that).
    """
    path = tmp_path_factory.mktemp("tiny") / "tiny.zarr"
    return et.datasets.synthetic(path, n_biosamples=4, n_assays=3, n_positions=8_000, missing=0.3, seed=2)


@pytest.fixture(scope="session")
def tiny_model(tiny_store):
    """An Avocado of 16 nodes in one layer fitted for one epoch on :func:`tiny_store` (do not refit it)."""
    model = et.Avocado(tiny_store, preset="paper", seed=0, n_nodes=16, n_layers=1, batch_size=1000)
    model.fit(epochs=1, progress=False)
    return model


class _ForbidCompute:
    """A dask scheduler that fails if anything is computed (xarray's raise_if_dask_computes)."""

    def __call__(self, dsk, keys, **kwargs):
        raise RuntimeError("dask computed something where the operation must stay lazy")


@pytest.fixture
def no_compute():
    with dask.config.set(scheduler=_ForbidCompute()):
        yield



@pytest.fixture
def run_script(tmp_path):
    """Run Python source (dedented) as a script in a subprocess, with the epitensor under test
    importable and text output captured: for code that may crash or kill the interpreter.

    ``run_script(source, *args, timeout=120)`` returns the ``subprocess.CompletedProcess``.
    """
    source_tree = str(Path(et.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": source_tree + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def run(source: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
        script = tmp_path / "script.py"
        script.write_text(textwrap.dedent(source))
        return subprocess.run([sys.executable, str(script), *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)

    return run
