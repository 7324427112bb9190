"""An offline compendium generator with the structure of real epigenomic data.

The tensor is built from a few latent *programs* along the genome: peak programs (sparse,
narrow, punctate like H3K4me3 or TF binding) and domain programs (broad, piecewise-constant like
H3K27me3 or H3K36me3). Assays load on either kind, biosamples fall into cell-type groups that share
their loadings, and the signal is a rectified combination on the arcsinh scale, plus noise. The
average-activity baseline is informative, but a factorization that learns the biosample groups
does better, as on real data.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from ..exceptions import DataError
from ..genome import Genome
from ..store import TrackWriter, create_store, open_dataset

_PEAK_ASSAYS = ["H3K4me3", "H3K27ac", "H3K9ac", "H3K4me2", "CTCF", "POLR2A", "EP300", "DNase-seq"]
_BROAD_ASSAYS = ["H3K27me3", "H3K36me3", "H3K9me3", "H3K4me1", "H3K79me2", "H4K20me1"]


def _assay_names(n: int) -> list[tuple[str, bool]]:
    """(name, is_peak_like) for ``n`` assays, alternating peak and broad marks."""
    out = []
    for i in range(n):
        pool, peak = (_PEAK_ASSAYS, True) if i % 2 == 0 else (_BROAD_ASSAYS, False)
        j = i // 2
        name = pool[j % len(pool)] + (f"-{j // len(pool)}" if j >= len(pool) else "")
        out.append((name, peak))
    return out


def _programs(rng, n_positions: int, n_peak: int, n_domain: int) -> np.ndarray:
    """Latent genome programs, shape (n_peak + n_domain, n_positions), values in [0, ~1]."""
    progs = []
    kernel = np.exp(-0.5 * (np.arange(-12, 13) / 3.0) ** 2)
    for _ in range(n_peak):
        spikes = (rng.random(n_positions) < 0.004) * rng.gamma(2.0, 1.0, n_positions)
        progs.append(np.convolve(spikes, kernel, mode="same"))
    for _ in range(n_domain):
        n_seg = max(2, n_positions // 400)
        cuts = np.sort(rng.choice(np.arange(1, n_positions), size=n_seg - 1, replace=False))
        levels = (rng.random(n_seg) < 0.35) * rng.uniform(0.4, 1.2, n_seg)
        progs.append(np.repeat(levels, np.diff(np.concatenate([[0], cuts, [n_positions]]))))
    progs = np.array(progs)
    return progs / np.maximum(progs.max(axis=1, keepdims=True), 1e-9)


class _Latent:
    """Planted structure: per-track loadings on the genome programs, and a background level."""

    def __init__(self, n_biosamples, n_assays, n_positions, n_groups, seed):
        rng = np.random.default_rng(seed)
        n_peak, n_domain = 4, 3
        self.programs = _programs(rng, n_positions, n_peak, n_domain)
        self.assays = _assay_names(n_assays)
        # assay loadings: peak assays on peak programs, broad assays on domain programs
        A = np.zeros((n_assays, n_peak + n_domain))
        for i, (_, peak) in enumerate(self.assays):
            idx = slice(0, n_peak) if peak else slice(n_peak, n_peak + n_domain)
            A[i, idx] = rng.gamma(1.0, 1.0, A[i, idx].shape[0])
        # biosample loadings: cell-type groups share a profile, members vary around it
        group = rng.integers(0, n_groups, n_biosamples)
        k = n_peak + n_domain
        profiles = rng.gamma(1.2, 1.0, (n_groups, k)) * (rng.random((n_groups, k)) < 0.8)
        B = profiles[group] * rng.lognormal(0.0, 0.2, (n_biosamples, k))
        self.loadings = B[:, None, :] * (A * rng.uniform(2.0, 6.0, n_assays)[:, None])[None, :, :]
        self.background = rng.gamma(1.0, 0.3, n_assays)
        self.seed = seed

    def track(self, b: int, a: int, noise: float) -> np.ndarray:
        """arcsinh-scale values of track (b, a); its noise is seeded by (seed, b, a)."""
        raw = self.loadings[b, a] @ self.programs + self.background[a]
        values = np.arcsinh(np.maximum(raw, 0) ** 1.3)
        values += noise * np.random.default_rng([self.seed, b, a]).standard_normal(values.shape)
        return np.maximum(values, 0).astype(np.float32)


def synthetic_tensor(n_biosamples=12, n_assays=8, n_positions=50_000, *, n_groups=3, noise=0.15, seed=0):
    """The full (biosample, assay, position) float32 tensor on the arcsinh scale, and assay kinds.

    Returns
    -------
    values : ndarray, shape (n_biosamples, n_assays, n_positions)
    assays : list of (name, is_peak_like)

    Examples
    --------
    >>> values, assays = synthetic_tensor(3, 2, 1000, seed=0)
    >>> values.shape, assays[0]
    ((3, 2, 1000), ('H3K4me3', True))
    """
    latent = _Latent(n_biosamples, n_assays, n_positions, n_groups, seed)
    values = np.stack([np.stack([latent.track(b, a, noise) for a in range(n_assays)]) for b in range(n_biosamples)])
    return values, latent.assays


def synthetic(
    store=None,
    *,
    n_biosamples: int = 12,
    n_assays: int = 8,
    n_positions: int = 50_000,
    genome: Genome | None = None,
    missing: float = 0.886,
    mask=None,
    biosamples=None,
    assays=None,
    keep_held_out: bool = True,
    n_groups: int = 3,
    noise: float = 0.15,
    seed: int = 0,
    overwrite: bool = True,
) -> xr.Dataset:
    """Build a synthetic compendium store with planted low-rank structure and missing tracks.

    Parameters
    ----------
    store : str or Path, optional
        Where to write the zarr store; default: a new temporary directory.
    n_biosamples, n_assays, n_positions : int
        Tensor size. ``n_positions`` bins make one contig called ``synthetic`` unless ``genome``
        is given, in which case the tensor covers the genome's contigs.
    genome : Genome, optional
        Lay the data out on this genome (all its contigs; keep it small).
    missing : float, default 0.886
        Fraction of (biosample, assay) pairs left unobserved (ENCODE2018-Core's 88.6%); every
        biosample and assay keeps at least one observed track.
    mask : array-like of bool, shape (n_biosamples, n_assays), or DataArray, optional
        Observed pattern given by the caller (True = observed); overrides ``missing``. A DataArray
        with ``biosample``/``assay`` coordinates (e.g. from
        :func:`~epitensor.datasets.read_encode_experiments`) also supplies the labels.
    biosamples, assays : list of str, optional
        Labels; default ``B00, B01, ...`` and realistic mark names.
    keep_held_out : bool, default True
        Write the true values of unobserved tracks into the ``held_out`` variable, for evaluation.
    n_groups : int, default 3
        Number of cell-type groups whose biosamples share their loadings.
    noise : float, default 0.15
        Standard deviation of the Gaussian noise added on the arcsinh scale.
    seed : int, default 0
        Everything is deterministic given the seed.
    overwrite : bool, default True
        Replace an existing store at ``store``.

    Returns
    -------
    xarray.Dataset
        The opened store.

    Examples
    --------
    >>> ds = synthetic(n_biosamples=6, n_assays=4, n_positions=20_000, missing=0.5, seed=3)
    >>> ds.signal.shape, round(ds.epi.observed_fraction(), 2)
    ((6, 4, 20000), 0.5)
    """
    if isinstance(mask, xr.DataArray):
        biosamples = [str(x) for x in mask.biosample.values]
        assays = [str(x) for x in mask.assay.values]
        mask = mask.transpose("biosample", "assay").values
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        n_biosamples, n_assays = mask.shape
    if genome is not None:
        n_positions = sum(genome.n_bins(c) for c in genome.contigs)
    else:
        genome = Genome.single_contig("synthetic", n_positions, assembly="synthetic")
    latent = _Latent(n_biosamples, n_assays, n_positions, n_groups, seed)
    rng = np.random.default_rng(seed + 1)
    if mask is None:
        if not 0.0 <= missing < 1.0:
            raise DataError(f"missing must be in [0, 1), got {missing}")
        mask = _draw_mask(rng, n_biosamples, n_assays, missing)
    biosamples = list(biosamples) if biosamples is not None else [f"B{i:02d}" for i in range(n_biosamples)]
    assay_names = list(assays) if assays is not None else [k[0] for k in latent.assays]
    if len(biosamples) != n_biosamples or len(assay_names) != n_assays:
        raise DataError(f"got {len(biosamples)} biosample and {len(assay_names)} assay labels for a {n_biosamples} x {n_assays} tensor")
    store = Path(store) if store is not None else Path(tempfile.mkdtemp(prefix="epitensor-synthetic-")) / "synthetic.zarr"
    create_store(store, biosamples, assay_names, genome, overwrite=overwrite)
    writer = TrackWriter(store)
    for b, a in zip(*np.nonzero(mask | keep_held_out)):
        values, offset = latent.track(b, a, noise), 0
        for contig in genome.contigs:
            n = genome.n_bins(contig)
            variable = "signal" if mask[b, a] else "held_out"
            writer.write(biosamples[b], assay_names[a], values[offset : offset + n], contig, variable)
            offset += n
    writer.mark_observed([(biosamples[b], assay_names[a]) for b, a in zip(*np.nonzero(mask))])
    return open_dataset(store)


def _draw_mask(rng, n_biosamples: int, n_assays: int, missing: float) -> np.ndarray:
    """Observed mask with about ``1 - missing`` observed and every row and column covered."""
    target = max(int(round((1 - missing) * n_biosamples * n_assays)), max(n_biosamples, n_assays))
    mask = np.zeros((n_biosamples, n_assays), dtype=bool)
    # cover every biosample and assay once (a random matching), then fill at random
    rows, cols = rng.permutation(n_biosamples), rng.permutation(n_assays)
    for i in range(max(n_biosamples, n_assays)):
        mask[rows[i % n_biosamples], cols[i % n_assays]] = True
    free = np.flatnonzero(~mask.ravel())
    extra = max(target - int(mask.sum()), 0)
    mask.ravel()[rng.choice(free, size=min(extra, free.size), replace=False)] = True
    return mask

