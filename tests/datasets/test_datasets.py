"""Sample data: the real Roadmap tracks, the ENCODE2018 experiment lists, synthetic compendia."""

import hashlib

import numpy as np
import pytest

import epitensor as et
from epitensor.datasets import encode, roadmap


def test_roadmap_pilot_from_local_copies(roadmap_dir, tmp_path):
    ds = et.datasets.roadmap_pilot(tmp_path / "r.zarr", path=roadmap_dir, mask="latin-square", n_bins=50_000)
    assert ds.signal.shape == (5, 5, 50_000)
    assert ds.attrs["contigs"] == ["pilot"] and ds.attrs["assembly"] == "hg19-pilot"
    assert int(ds.observed.sum()) == 20
    for b, a in et.datasets.LATIN_SQUARE:
        assert not ds.observed.sel(biosample=b, assay=a)
        assert np.isnan(ds.signal.sel(biosample=b, assay=a).values).all()
        assert not np.isnan(ds.held_out.sel(biosample=b, assay=a).values).any()
    raw = np.load(roadmap_dir / "E116.H3K4me3.pilot.arcsinh.npz")["arr_0"][:50_000]
    np.testing.assert_array_equal(ds.signal.sel(biosample="E116", assay="H3K4me3").values, raw)
    region = ds.signal.epi.region("pilot:0-1000").sel(biosample="E116", assay="H3K4me3")
    np.testing.assert_array_equal(region.values, raw[:40])


def test_roadmap_env_var_and_errors(roadmap_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("EPITENSOR_DATA", str(roadmap_dir.parent))
    assert roadmap.find_local_copy() == roadmap_dir
    with pytest.raises(et.LabelError, match="cannot mask"):
        et.datasets.roadmap_pilot(tmp_path / "x.zarr", path=roadmap_dir, mask=[("E999", "H3K4me3")])
    with pytest.raises(et.DataError, match="n_bins"):
        et.datasets.roadmap_pilot(tmp_path / "x.zarr", path=roadmap_dir, n_bins=10**9)
    with pytest.raises(et.DownloadError, match="missing Roadmap track file"):
        et.datasets.roadmap_pilot(tmp_path / "x.zarr", path=tmp_path)


def test_roadmap_registry_matches_shipped_hashes(roadmap_dir):
    reg = roadmap.registry()
    assert len(reg) == 25 and all(v.startswith("sha256:") and len(v) == 71 for v in reg.values())
    # the local copies are truncated, so their hashes must NOT match the originals'
    local = hashlib.sha256((roadmap_dir / "E003.H3K4me3.pilot.arcsinh.npz").read_bytes()).hexdigest()
    assert reg["E003.H3K4me3.pilot.arcsinh.npz"] != f"sha256:{local}"
    assert roadmap.BASE_URL.startswith("https://") and roadmap._COMMIT in roadmap.BASE_URL


def test_fetch_reports_download_failures(tmp_path, monkeypatch):
    import pooch

    def refuse(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(pooch.Pooch, "fetch", refuse)
    with pytest.raises(et.DownloadError, match="EPITENSOR_DATA"):
        et.datasets.fetch_roadmap_pilot(tmp_path, progress=False)
    with pytest.raises(et.DownloadError, match=r"FIREs\.E116\.\w+\.npy.*\.npy files"):
        et.datasets.fetch_avocado_downstream(tmp_path, progress=False)


def test_encode_core_experiment_list(encode_core):
    table = et.datasets.read_encode_experiments(encode_core)
    mask = et.datasets.experiment_mask(table)
    assert mask.shape == (400, 84)
    assert 1 - float(mask.mean()) == pytest.approx(0.886, abs=0.001)
    assert int(mask.sum()) == len(table)
    assert {"H3K27ac", "CTCF", "DNase-seq", "ATAC-seq"} <= set(mask.assay.values)
    assert mask.assay_category.sel(assay="CTCF").item() == "tf"
    assert mask.assay_category.sel(assay="H3K4me3").item() == "histone"
    assert mask.assay_category.sel(assay="DNase-seq").item() == "accessibility"
    assert table.url.str.startswith("https://www.encodeproject.org/files/ENCFF").all()


def test_encode_reader_errors(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Biosample\tAssay\nK562\tCTCF\n")
    with pytest.raises(et.LabelError, match="missing columns"):
        et.datasets.read_encode_experiments(bad)
    assert encode.short_assay_name("DNase-seq_read-depth_normalized_signal") == "DNase-seq"


@pytest.mark.slow
def test_synthetic_store_with_real_encode_missingness(encode_core, tmp_path):
    mask = et.datasets.experiment_mask(et.datasets.read_encode_experiments(encode_core))
    ds = et.datasets.synthetic(tmp_path / "e.zarr", mask=mask, n_positions=500, keep_held_out=False)
    assert ds.signal.shape == (400, 84, 500)
    assert (ds.observed.values == mask.values).all()
    assert ds.epi.observed_fraction() == pytest.approx(0.114, abs=0.001)
    hepg2 = ds.signal.epi.region("synthetic:0-5kb").sel(biosample="HepG2")
    assert hepg2.sizes["position"] == 200 and hepg2.observed.any()
    written = {p.parts[-3:-1] for p in (tmp_path / "e.zarr" / "signal").rglob("c/*/*/*")}
    assert len(written) == int(mask.sum())  # one chunk per observed track, none for missing ones


def test_synthetic_is_deterministic_and_structured(tmp_path):
    a = et.datasets.synthetic(tmp_path / "a.zarr", n_biosamples=6, n_assays=4, n_positions=5_000, missing=0.5, seed=7)
    b = et.datasets.synthetic(tmp_path / "b.zarr", n_biosamples=6, n_assays=4, n_positions=5_000, missing=0.5, seed=7)
    c = et.datasets.synthetic(tmp_path / "c.zarr", n_biosamples=6, n_assays=4, n_positions=5_000, missing=0.5, seed=8)
    np.testing.assert_array_equal(a.signal.values, b.signal.values)
    assert not np.array_equal(a.observed.values, c.observed.values) or not np.allclose(
        np.nan_to_num(a.signal.values), np.nan_to_num(c.signal.values)
    )
    assert a.epi.observed_fraction() == 0.5
    # every biosample and assay keeps an observed track
    assert a.observed.any("assay").all() and a.observed.any("biosample").all()
    # truth of hidden tracks is kept, arcsinh-scale and non-negative
    full = np.where(a.observed.values[..., None], a.signal.values, a.held_out.values)
    assert not np.isnan(full).any() and full.min() >= 0 and 0.5 < full.mean() < 5


def test_synthetic_has_low_rank_structure_beyond_the_assay_mean():
    values, kinds = et.datasets.synthetic_tensor(12, 6, 4_000, seed=0)
    peak = [i for i, (_, p) in enumerate(kinds) if p]
    x = values.reshape(-1, values.shape[-1])
    residual = values - values.mean(axis=0, keepdims=True)  # what the average-activity baseline misses
    assert residual.var() > 0.05 * values.var()
    s = np.linalg.svd(x - x.mean(1, keepdims=True), compute_uv=False)
    assert (s[:8] ** 2).sum() / (s**2).sum() > 0.7  # few programs explain most of the variance
    # peak-like assays are sparse and spiky: their upper tail is far above their median
    p = values[:, peak].ravel()
    assert np.quantile(p, 0.999) > 2 * np.median(p)


def test_synthetic_argument_errors(tmp_path):
    with pytest.raises(et.DataError, match="missing"):
        et.datasets.synthetic(tmp_path / "x.zarr", missing=1.0)
    with pytest.raises(et.DataError, match="labels"):
        et.datasets.synthetic(tmp_path / "x.zarr", n_biosamples=3, biosamples=["a"])
