"""The genome a tensor is laid out on: contigs, 25 bp bins and one genome-wide position axis.

Every contig starts on a chunk boundary of the position axis, so that work on one contig (or on
one chunk-aligned block of it) writes chunks that no other contig touches. The few bins of padding
between contigs hold no data and cost nothing on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources

import numpy as np
import pandas as pd

from .exceptions import GenomeError

#: Bin width of every epitensor store, in base pairs (the papers' 25 bp).
BIN_SIZE = 25
#: Default chunk length along ``position``, in bins: 40,000 bins = 1 Mb at 25 bp, a multiple of
#: the 5 kbp (200-bin) resolution of the coarsest genome factors.
CHUNK_BINS = 40_000
#: Assemblies whose primary-chromosome lengths ship with the package.
ASSEMBLIES = ("hg19", "hg38")


def n_bins(length: int, bin_size: int = BIN_SIZE) -> int:
    """Number of bins covering ``length`` bp: ``(length - 1) // bin_size + 1``.

    The last bin is partial when ``length`` is not a multiple of ``bin_size``.

    Examples
    --------
    >>> n_bins(100), n_bins(101)
    (4, 5)
    """
    return (int(length) - 1) // bin_size + 1


def _alias_keys(name: str) -> set[str]:
    """Spellings of one contig name that mean the same contig (``chr1``/``1``, ``chrM``/``MT``)."""
    bare = name[3:] if name.lower().startswith("chr") else name
    keys = {name, bare, "chr" + bare}
    if bare.upper() in {"M", "MT"}:
        keys |= {"M", "MT", "chrM", "chrMT"}
    return {k.lower() for k in keys}


@dataclass(frozen=True)
class Genome:
    """Contigs of an assembly laid out on one genome-wide axis of fixed-width bins.

    Parameters
    ----------
    assembly : str
        Assembly name, e.g. ``"hg38"``; recorded in the store's attributes.
    contigs : tuple of str
        Contig names in axis order.
    lengths : tuple of int
        Contig lengths in base pairs.
    bin_size : int, default 25
        Bin width in bp.
    chunk_bins : int, default 40,000
        Chunk length of the position axis; every contig starts on a multiple of it.

    Examples
    --------
    >>> g = Genome.from_assembly("hg38", contigs=["chr21", "chr22"])
    >>> g.n_positions
    3912739
    >>> int(g.contig_table().loc["chr22", "first_bin"])
    1880000
    """

    assembly: str
    contigs: tuple[str, ...]
    lengths: tuple[int, ...]
    bin_size: int = BIN_SIZE
    chunk_bins: int = CHUNK_BINS
    _aliases: dict = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "contigs", tuple(str(c) for c in self.contigs))
        object.__setattr__(self, "lengths", tuple(int(n) for n in self.lengths))
        if len(self.contigs) == 0:
            raise GenomeError("a genome needs at least one contig; pass contigs=[...] and lengths=[...]")
        if len(self.contigs) != len(self.lengths):
            raise GenomeError(
                f"got {len(self.contigs)} contig names but {len(self.lengths)} lengths; "
                "give one length per contig"
            )
        if len(set(self.contigs)) != len(self.contigs):
            dup = pd.Index(self.contigs)[pd.Index(self.contigs).duplicated()].tolist()
            raise GenomeError(f"contig names must be unique; duplicated: {dup}")
        if any(n <= 0 for n in self.lengths):
            raise GenomeError(f"contig lengths must be positive; got {dict(zip(self.contigs, self.lengths))}")
        if self.bin_size <= 0 or self.chunk_bins <= 0:
            raise GenomeError("bin_size and chunk_bins must be positive integers")
        aliases = {}
        for name in self.contigs:
            for key in _alias_keys(name):
                aliases.setdefault(key, name)
        for name in self.contigs:  # an exact name always wins over an alias
            aliases[name.lower()] = name
        object.__setattr__(self, "_aliases", aliases)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_assembly(cls, assembly: str, contigs=None, **kwargs) -> Genome:
        """Genome of a shipped assembly (``hg19`` or ``hg38``: chr1-22, X, Y, M).

        Parameters
        ----------
        assembly : {"hg19", "hg38"}
        contigs : list of str, optional
            Keep only these contigs, in this order (aliases such as ``"21"`` are accepted).
        **kwargs
            ``bin_size`` and ``chunk_bins``.
        """
        if assembly not in ASSEMBLIES:
            raise GenomeError(
                f"unknown assembly {assembly!r}; shipped assemblies are {list(ASSEMBLIES)}. "
                "For another genome pass Genome(assembly, contigs, lengths) or a chrom.sizes file "
                "to Genome.from_chrom_sizes."
            )
        text = resources.files("epitensor.data").joinpath(f"{assembly}.chrom.sizes").read_text()
        return cls._from_sizes_text(assembly, text, contigs, **kwargs)

    @classmethod
    def from_chrom_sizes(cls, assembly: str, path, contigs=None, **kwargs) -> Genome:
        """Genome from a UCSC ``chrom.sizes`` file (two columns: name, length)."""
        with open(path) as fh:
            return cls._from_sizes_text(assembly, fh.read(), contigs, **kwargs)

    @classmethod
    def _from_sizes_text(cls, assembly, text, contigs, **kwargs):
        rows = [line.split()[:2] for line in text.splitlines() if line.strip() and not line.startswith("#")]
        full = cls(assembly, [r[0] for r in rows], [int(r[1]) for r in rows], **kwargs)
        return full if contigs is None else full.subset(contigs)

    @classmethod
    def single_contig(cls, name: str, n_bins: int, assembly: str = "custom", **kwargs) -> Genome:
        """A genome of one contig of ``n_bins`` full bins (for data without coordinates)."""
        bin_size = kwargs.get("bin_size", BIN_SIZE)
        return cls(assembly, [name], [int(n_bins) * bin_size], **kwargs)

    def subset(self, contigs) -> Genome:
        """The same assembly restricted to ``contigs`` (in the given order)."""
        if isinstance(contigs, str):
            contigs = [contigs]
        names = [self.resolve(c) for c in contigs]
        lengths = [self.length(c) for c in names]
        return Genome(self.assembly, names, lengths, self.bin_size, self.chunk_bins)

    # ------------------------------------------------------------------ contig lookups
    def resolve(self, name: str) -> str:
        """Canonical contig name for ``name``, accepting ``1``/``chr1`` and ``MT``/``chrM`` aliases.

        Raises
        ------
        GenomeError
            If no contig of this genome matches.
        """
        hit = self._aliases.get(str(name).lower())
        if hit is None:
            for key in _alias_keys(str(name)):
                hit = self._aliases.get(key)
                if hit is not None:
                    break
        if hit is None:
            shown = ", ".join(self.contigs[:30]) + (" ..." if len(self.contigs) > 30 else "")
            raise GenomeError(f"contig {name!r} is not in genome {self.assembly!r}; its contigs are: {shown}")
        return hit

    def length(self, contig: str) -> int:
        """Length in bp of ``contig``."""
        return self.lengths[self.index(contig)]

    def index(self, contig: str) -> int:
        """Position of ``contig`` in the contig order."""
        return self.contigs.index(self.resolve(contig))

    def n_bins(self, contig: str) -> int:
        """Number of bins of ``contig``."""
        return n_bins(self.length(contig), self.bin_size)

    @cached_property
    def first_bins(self) -> np.ndarray:
        """First position of each contig on the genome-wide axis (multiples of ``chunk_bins``)."""
        sizes = np.array([n_bins(n, self.bin_size) for n in self.lengths], dtype=np.int64)
        padded = -(-sizes // self.chunk_bins) * self.chunk_bins
        return np.concatenate([[0], np.cumsum(padded)[:-1]]).astype(np.int64)

    @property
    def n_positions(self) -> int:
        """Length of the genome-wide position axis (contigs plus alignment padding)."""
        last = len(self.contigs) - 1
        return int(self.first_bins[last] + n_bins(self.lengths[last], self.bin_size))

    def contig_bins(self, contig: str) -> tuple[int, int]:
        """Half-open range ``[first, end)`` of positions that ``contig`` occupies."""
        i = self.index(contig)
        first = int(self.first_bins[i])
        return first, first + n_bins(self.lengths[i], self.bin_size)

    def contig_table(self) -> pd.DataFrame:
        """Contigs as a DataFrame indexed by name: ``length``, ``n_bins``, ``first_bin``."""
        return pd.DataFrame(
            {
                "length": np.array(self.lengths, dtype=np.int64),
                "n_bins": [n_bins(n, self.bin_size) for n in self.lengths],
                "first_bin": self.first_bins,
            },
            index=pd.Index(self.contigs, name="contig"),
        )

    def locate(self, positions) -> tuple[np.ndarray, np.ndarray]:
        """Contig names and start coordinates (bp) of genome-wide ``positions``.

        Positions in the padding between contigs get contig ``""`` and start ``-1``.
        """
        names, starts, _ = self.locate_bins(positions)
        return names, starts

    def locate_bins(self, positions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Contig names, start and end coordinates (bp, half-open) of genome-wide ``positions``.

        The last bin of a contig ends at the contig's end; padding bins get ``""``, -1 and -1.

        Examples
        --------
        >>> g = Genome("g", ["a", "b"], [60, 25], chunk_bins=4)
        >>> names, starts, ends = g.locate_bins([2, 3, 4])
        >>> names.tolist(), starts.tolist(), ends.tolist()
        (['a', '', 'b'], [50, -1, 0], [60, -1, 25])
        """
        positions = np.asarray(positions, dtype=np.int64)
        idx = np.searchsorted(self.first_bins, positions, side="right") - 1
        contig = np.clip(idx, 0, None)
        sizes = np.array([n_bins(n, self.bin_size) for n in self.lengths])
        offset = positions - self.first_bins[contig]
        inside = (idx >= 0) & (offset < sizes[contig])
        names = np.where(inside, np.array(self.contigs, dtype=object)[contig], "")
        starts = np.where(inside, offset * self.bin_size, -1)
        ends = np.where(inside, np.minimum(starts + self.bin_size, np.array(self.lengths, dtype=np.int64)[contig]), -1)
        return names, starts, ends

    # ------------------------------------------------------------------ (de)serialisation
    def to_attrs(self) -> dict:
        """Attributes recorded in a store (JSON-serialisable)."""
        return {
            "assembly": self.assembly,
            "bin_size": self.bin_size,
            "chunk_bins": self.chunk_bins,
            "contigs": list(self.contigs),
            "contig_lengths": list(self.lengths),
            "contig_first_bins": [int(b) for b in self.first_bins],
        }

    @classmethod
    def from_attrs(cls, attrs) -> Genome:
        """Rebuild the genome recorded in a store's (or DataArray's) attributes."""
        missing = [k for k in ("assembly", "bin_size", "chunk_bins", "contigs", "contig_lengths") if k not in attrs]
        if missing:
            from .exceptions import SchemaError

            raise SchemaError(
                f"attributes lack {missing}, so the genome layout is unknown; open the data with "
                "epitensor.open_dataset, or copy the store's attributes onto the array (da.attrs.update(ds.attrs))"
            )
        contigs = attrs["contigs"]
        lengths = attrs["contig_lengths"]
        contigs, lengths = _attr_list(contigs), [int(n) for n in _attr_list(lengths)]
        return cls(attrs["assembly"], contigs, lengths, int(attrs["bin_size"]), int(attrs["chunk_bins"]))

    def check_same(self, other: Genome, what: str = "genomes") -> None:
        """Raise :class:`GenomeError` naming the first difference between two genomes."""
        if self == other:
            return
        if self.assembly != other.assembly:
            raise GenomeError(f"{what} differ: assembly {self.assembly!r} vs {other.assembly!r}")
        if self.contigs != other.contigs:
            raise GenomeError(f"{what} differ in their contigs: {list(self.contigs)} vs {list(other.contigs)}")
        for c, a, b in zip(self.contigs, self.lengths, other.lengths):
            if a != b:
                raise GenomeError(f"{what} differ: {c} is {a} bp vs {b} bp (a different genome build?)")
        raise GenomeError(
            f"{what} differ in layout: bin_size {self.bin_size} vs {other.bin_size}, "
            f"chunk_bins {self.chunk_bins} vs {other.chunk_bins}"
        )


def _attr_list(value) -> list:
    """A list attribute as written by zarr (a list), netCDF (an array, or a bare string or number
    when it held one item) or an older writer (a JSON string)."""
    if isinstance(value, str):
        return json.loads(value) if value.startswith("[") else [value]
    return np.atleast_1d(value).tolist()
