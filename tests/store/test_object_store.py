"""Stores on an S3-compatible object store: moto's real server on 127.0.0.1, started by the tests.

Everything goes through the public API with ``s3://`` URLs and ``storage_options`` (no mocks in
this process): ingestion, region reads, stage 2 (fit_genome, impute_genome), a stage-2 run killed
with SIGKILL and resumed, and the errors for a bad bucket or URL. Each result is compared with the
same work done on a local store.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import REPO

s3fs = pytest.importorskip("s3fs", reason="object-store tests need s3fs (pip install 'epitensor[s3]')")
pytest.importorskip("moto.server", reason="object-store tests need moto's server (pip install 'moto[server]')")

import epitensor as et  # noqa: E402
from epitensor.datasets import synthetic_bigwigs  # noqa: E402
from epitensor.exceptions import ObjectStoreError, StoreNotFoundError  # noqa: E402
from epitensor.io import completed_pieces  # noqa: E402
from epitensor.scale.markers import read_markers  # noqa: E402
from epitensor.store import locate  # noqa: E402

torch.set_num_threads(1)
BUCKET = "epitensor-test"
CHROMS = {"chr1": 60_013, "chr2": 30_007}
BW_GENOME = et.Genome("test", list(CHROMS), list(CHROMS.values()), chunk_bins=1_000)
#: Stage 2: as tests/test_genome_scale.py, smaller.
GENOME = et.Genome("toy", ["c1", "c2"], [3_400 * 25, 2_200 * 25], chunk_bins=1_000)
FACTORS = ("genome_factors_25bp", "genome_factors_250bp", "genome_factors_5kbp")
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server in a subprocess on 127.0.0.1 with one bucket: ``(storage_options, fs)``."""
    port = _free_port()
    env = {**os.environ, **DUMMY_CREDENTIALS}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail(f"moto's server did not start on port {port}")
            time.sleep(0.1)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in DUMMY_CREDENTIALS.items():
            mp.setenv(k, v)
        options = {"endpoint_url": f"http://127.0.0.1:{port}"}
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir(BUCKET)
        yield options, fs
    server.kill()
    server.wait()


def _url(name: str) -> str:
    return f"s3://{BUCKET}/{name}"


def _arrays(root: zarr.Group, names) -> dict:
    return {n: root[n][:] for n in names if n in root}


# ---------------------------------------------------------------------- ingestion and region reads
def test_ingest_into_s3_reads_like_local(s3, tmp_path):
    options, fs = s3
    manifest = synthetic_bigwigs(tmp_path / "bw", CHROMS, ["B1", "B2"], ["H3K4me3", "H3K27me3"], seed=7)
    local = et.ingest(manifest, tmp_path / "local.zarr", assembly=BW_GENOME, progress=False)
    store = et.ingest(manifest, _url("ingested.zarr"), assembly=BW_GENOME, progress=False, storage_options=options)
    assert str(store) == _url("ingested.zarr") and fs.exists(f"{BUCKET}/ingested.zarr/zarr.json")
    assert not list(Path(tmp_path).glob("s3:*"))  # nothing written locally under the URL's name
    # one completion record per piece, as locally
    assert completed_pieces(store) == completed_pieces(local) and len(completed_pieces(store)) == 8
    ds_l, ds_s = et.open_dataset(local), et.open_dataset(_url("ingested.zarr"), storage_options=options)
    assert ds_s.attrs["source"] == _url("ingested.zarr")
    np.testing.assert_array_equal(ds_s.observed.values, ds_l.observed.values)
    assert ds_s.observed.values.all()
    # region reads by label, in another order than the store's, equal to the local store's
    for b in ("B2", "B1"):
        for a in ("H3K27me3", "H3K4me3"):
            for region in ("chr1:10kb-40kb", "chr2:29,000-30,007"):
                got = ds_s.signal.sel(biosample=b, assay=a).epi.region(region).values
                want = ds_l.signal.sel(biosample=b, assay=a).epi.region(region).values
                assert got.size and np.isfinite(want).all()
                np.testing.assert_array_equal(got, want)
    part = ds_s.sortby("assay", ascending=False).signal.sel(biosample=["B2"]).epi.region("chr2:0-25kb")
    np.testing.assert_array_equal(part.values, ds_l.sortby("assay", ascending=False).signal.sel(
        biosample=["B2"]).epi.region("chr2:0-25kb").values)
    # the same ingest again finds every record and writes nothing
    before = _etags(fs, "ingested.zarr")
    et.ingest(manifest, _url("ingested.zarr"), progress=False)  # storage_options remembered for the URL
    assert _etags(fs, "ingested.zarr") == before


def _etags(fs, name: str) -> dict:
    """Object -> ETag of every object of a store (one listing)."""
    fs.invalidate_cache()
    return {k: v["ETag"] for k, v in fs.find(f"{BUCKET}/{name}", detail=True).items()}


# ---------------------------------------------------------------------- stage 2
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A local store and a stage-1 model saved beside it: (store path, model dir)."""
    root = tmp_path_factory.mktemp("object_store")
    ds = et.datasets.synthetic(root / "base.zarr", n_biosamples=5, n_assays=3, genome=GENOME, missing=0.4, seed=5)
    model = et.Avocado(ds, preset="paper", seed=1, n_nodes=16, n_layers=2, batch_size=250)
    model.fit(region="c1:0-40kb", epochs=2, progress=False)
    model.save(root / "model")
    return root / "base.zarr", root / "model"


def _copies(trained, s3, tmp_path, name):
    """The trained store copied to ``tmp_path/local.zarr`` and uploaded to ``s3://bucket/name``."""
    options, fs = s3
    local = tmp_path / "local.zarr"
    shutil.copytree(trained[0], local)
    fs.put(str(trained[0]), f"{BUCKET}/{name}", recursive=True)
    return local, _url(name)


def _load(trained, store, options=None):
    return et.Avocado.load(trained[1], et.open_dataset(store, storage_options=options), device="cpu")


DRIVER = textwrap.dedent("""
    import os, sys, time, torch
    sys.path.insert(0, {repo!r})
    import epitensor as et
    torch.set_num_threads(1)
    while not os.path.exists({go!r}):  # imported while the test uploads the store
        time.sleep(0.05)
    options = {options!r}
    model = et.Avocado.load({model!r}, et.open_dataset({store!r}, storage_options=options), device="cpu")
    model.fit_genome({store!r}, region="c2", block_size="10kb", epochs=3, write_imputed=True,
                     scheduler="synchronous", progress=False)
""")


def test_stage2_on_s3_killed_and_resumed_equals_local(trained, s3, tmp_path):
    """fit_genome on S3 killed (SIGKILL) after some blocks and resumed ends with the bytes of an
    uninterrupted run on a local copy; then impute_genome and the model's reads agree as well."""
    options, fs = s3
    url, go = _url("stage2.zarr"), tmp_path / "go"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(repo=str(REPO), model=str(trained[1]), store=url, options=options, go=str(go)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    local, _ = _copies(trained, s3, tmp_path, "stage2.zarr")
    store = locate(url, options)  # the location remembers the options for the URL
    go.touch()
    # the uninterrupted run, on a local copy, while the driver imports and starts
    model_l = _load(trained, local)
    model_l.fit_genome(local, region="c2", block_size="10kb", epochs=3, write_imputed=True, scheduler="synchronous",
                       progress=False)
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None and len(read_markers(store, "factors")) < 2:
        time.sleep(0.25)
    assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(read_markers(url, "factors"))
    assert 2 <= n_done < 6, n_done  # killed part-way (c2 has 6 blocks of 10 kb)
    model_s = _load(trained, url)
    resumed = model_s.fit_genome(url, region="c2", block_size="10kb", epochs=3, write_imputed=True,
                                 scheduler="synchronous", progress=False)
    assert (resumed.status == "finished before").sum() >= n_done - 1  # a block whose imputations were cut is redone
    assert (resumed.status == "fitted").sum() == 6 - n_done
    assert {m: v["key"] for m, v in read_markers(url, "imputed").items()} == \
        {m: v["key"] for m, v in read_markers(local, "imputed").items()}
    # impute_genome on both: other pairs, over part of the stage-2 blocks
    pairs = [(str(model_l.biosamples[0]), str(model_l.assays[1])), (str(model_l.biosamples[2]), str(model_l.assays[0]))]
    for model, where in ((model_l, local), (model_s, url)):
        report = model.impute_genome(where, pairs=pairs, region="c2:0-20kb", block_size="10kb", scheduler="threads",
                                     progress=False)
        assert list(report.status) == ["imputed"] * 2
    a = _arrays(zarr.open_group(str(local), mode="r"), (*FACTORS, "imputed"))
    b = _arrays(zarr.open_group(locate(url).zarr_store(read_only=True), mode="r"), (*FACTORS, "imputed"))
    assert set(b) == {*FACTORS, "imputed"}
    for name in a:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)
    assert np.isfinite(b["genome_factors_25bp"][4_000:6_200]).all()
    # the model imputes in the stage-2 blocks from the factors on S3
    np.testing.assert_array_equal(model_s.impute(region="c2:5kb-30kb").values, model_l.impute(region="c2:5kb-30kb").values)


# ---------------------------------------------------------------------- errors
def test_bad_bucket_or_url_is_a_clear_error(s3):
    options, fs = s3
    with pytest.raises(ObjectStoreError, match=r"s3://no-such-bucket/c\.zarr.*create the bucket"):
        et.open_dataset("s3://no-such-bucket/c.zarr", storage_options=options)
    with pytest.raises(ObjectStoreError, match=r"s3://no-such-bucket/c\.zarr.*endpoint_url"):
        et.create_store("s3://no-such-bucket/c.zarr", ["B"], ["A"], GENOME, storage_options=options)
    with pytest.raises(StoreNotFoundError, match=rf"no epitensor store at s3://{BUCKET}/absent\.zarr.*create the store"):
        et.open_dataset(_url("absent.zarr"), storage_options=options)
    with pytest.raises(et.ArgumentError, match=r"s3://.*object store.*Copy it to a local folder"):
        et.check_store(_url("absent.zarr"))
    closed = {"endpoint_url": f"http://127.0.0.1:{_free_port()}", "config_kwargs": {"retries": {"max_attempts": 1}},
              "retries": 1}
    with pytest.raises(ObjectStoreError, match=r"s3://any/c\.zarr.*storage_options"):
        et.open_dataset("s3://any/c.zarr", storage_options=closed)


def test_a_store_whose_creation_was_cut_short_is_refused_then_recreated(s3):
    options, fs = s3
    url = _url("cut.zarr")
    # what a create_store killed before its last write leaves: the root without epitensor_schema
    zarr.open_group(locate(url, options).zarr_store(), mode="w", attributes={"epitensor_creating": True})
    with pytest.raises(StoreNotFoundError, match="creation did not finish.*run the same create_store"):
        et.open_dataset(url)
    et.create_store(url, ["B2"], ["A"], GENOME)  # replaces the half-made store without overwrite=True
    assert list(et.open_dataset(url).biosample.values) == ["B2"]
    with pytest.raises(et.SchemaError, match=r"s3://.*cut\.zarr already exists.*overwrite=True"):
        et.create_store(url, ["B"], ["A"], GENOME)
