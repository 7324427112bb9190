"""Binned means straight from a bigWig file's data blocks, at the cost of its intervals.

``pyBigWig.values`` expands a region to one float per base before we average 25 of them; a
signal track stores one interval per few tens of bases, so most of that work is filler. This
module reads the file the way the format lays it out (UCSC bigWig specification, Kent et al.
2010): the chromosome B+ tree gives the contig's id, the R-tree index gives the data blocks that
overlap a region, and each (zlib-compressed) block holds one section of bedGraph, variableStep or
fixedStep items, decoded with :func:`numpy.frombuffer`. Bin sums then come from weighted
bincounts over the items (see :func:`_bin_sums`), with no per-base array at all.

The numbers equal ``pyBigWig.values`` -> NaN to 0 -> 25 bp means (tested on the real files of
``../shared/data/bigwig``); files this reader cannot take (overlapping intervals, an unknown
section type) make :meth:`BigWigBlocks.bin_sums` return None and the caller falls back to pyBigWig.
"""

from __future__ import annotations

import os
import zlib

import numpy as np

from ..exceptions import DataError

BIGWIG_MAGIC = 0x888FFC26
CHROM_TREE_MAGIC = 0x78CA8C91
INDEX_MAGIC = 0x2468ACE0


class BigWigBlocks:
    """The contigs and the data-block index of one bigWig file, opened for block reads.

    Parameters
    ----------
    path : str or Path
        A bigWig file.

    Raises
    ------
    ValueError
        The file is not a bigWig (callers open files with pyBigWig first for a clear error).

    Examples
    --------
    >>> reader = BigWigBlocks("H1_k27ac.bw")                        # doctest: +SKIP
    >>> reader.bin_sums("chr6", 31_000_000, 32_000_000, 25).shape   # doctest: +SKIP
    (40000,)
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            self._read_header()
            self.chroms = self._read_chrom_tree()
        except Exception:
            os.close(self._fd)
            raise

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ layout
    def _read(self, offset: int, size: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise ValueError(f"{self.path}: truncated file (wanted {size} bytes at {offset})")
        return data

    def _read_header(self) -> None:
        raw = self._read(0, 64)
        for order in "<>":
            if np.frombuffer(raw, dtype=f"{order}u4", count=1)[0] == BIGWIG_MAGIC:
                self._e = order
                break
        else:
            raise ValueError(f"{self.path} is not a bigWig file")
        e = self._e
        header = np.frombuffer(raw, dtype=np.dtype([
            ("magic", f"{e}u4"), ("version", f"{e}u2"), ("zoom_levels", f"{e}u2"), ("chrom_tree", f"{e}u8"),
            ("data", f"{e}u8"), ("index", f"{e}u8"), ("field_count", f"{e}u2"), ("defined_fields", f"{e}u2"),
            ("auto_sql", f"{e}u8"), ("total_summary", f"{e}u8"), ("uncompress_buf", f"{e}u4"), ("extension", f"{e}u8"),
        ]), count=1)[0]
        self._chrom_tree, self._index = int(header["chrom_tree"]), int(header["index"])
        self._zoom_levels, self._data = int(header["zoom_levels"]), int(header["data"])
        self._total_summary = int(header["total_summary"])
        self._compressed = int(header["uncompress_buf"]) > 0

    def summary_is_finite(self) -> bool | None:
        """Whether the file's total summary (min, max, sum, sum of squares) is finite, which
        proves every value is; None when the file has no total summary."""
        if self._total_summary == 0:
            return None
        e = self._e
        summary = np.frombuffer(self._read(self._total_summary, 40), dtype=np.dtype([
            ("bases", f"{e}u8"), ("min", f"{e}f8"), ("max", f"{e}f8"), ("sum", f"{e}f8"), ("squares", f"{e}f8"),
        ]), count=1)[0]
        return bool(np.isfinite([summary["min"], summary["max"], summary["sum"], summary["squares"]]).all())

    def _read_chrom_tree(self) -> dict[str, tuple[int, int]]:
        """Contig name -> (id, length), from the chromosome B+ tree."""
        e = self._e
        magic, block_size, key_size, val_size = np.frombuffer(self._read(self._chrom_tree, 16), dtype=f"{e}u4")
        if magic != CHROM_TREE_MAGIC or val_size != 8:
            raise ValueError(f"{self.path}: unreadable chromosome tree")
        leaf = np.dtype([("key", f"S{key_size}"), ("id", f"{e}u4"), ("size", f"{e}u4")])
        inner = np.dtype([("key", f"S{key_size}"), ("child", f"{e}u8")])
        out: dict[str, tuple[int, int]] = {}
        pending = [self._chrom_tree + 32]
        while pending:
            node = pending.pop()
            is_leaf, count = self._read(node, 4)[0], int(np.frombuffer(self._read(node + 2, 2), dtype=f"{e}u2")[0])
            kind = leaf if is_leaf else inner
            items = np.frombuffer(self._read(node + 4, count * kind.itemsize), dtype=kind)
            if is_leaf:
                out.update({k.decode(): (int(i), int(s)) for k, i, s in zip(items["key"], items["id"], items["size"])})
            else:
                pending.extend(int(c) for c in items["child"])
        return out

    def _zooms(self) -> np.ndarray:
        """The zoom-level headers (reduction level, data and index offsets) after the header."""
        e = self._e
        zoom = np.dtype([("level", f"{e}u4"), ("reserved", f"{e}u4"), ("data", f"{e}u8"), ("index", f"{e}u8")])
        return np.frombuffer(self._read(64, zoom.itemsize * self._zoom_levels), dtype=zoom)

    def check_layout(self) -> None:
        """Raise ValueError unless every offset of the header lies inside the file and the data
        index starts with its magic number.

        pyBigWig follows these offsets without checking them and can crash the interpreter on a
        damaged header, so files are checked with this before pyBigWig opens them.
        """
        size = os.fstat(self._fd).st_size
        zooms = self._zooms()
        offsets = [self._chrom_tree, self._data, self._index, *zooms["data"].tolist(), *zooms["index"].tolist()]
        if self._total_summary:
            offsets.append(self._total_summary)
        if self._zoom_levels > 10 or any(not 64 <= int(o) < size for o in offsets):
            raise ValueError(f"{self.path}: damaged header (an offset outside the file's {size:,} bytes)")
        if np.frombuffer(self._read(self._index, 4), dtype=f"{self._e}u4")[0] != INDEX_MAGIC:
            raise ValueError(f"{self.path}: unreadable data index")
        count = int(np.frombuffer(self._read(self._chrom_tree + 16, 8), dtype=f"{self._e}u8")[0])
        ids = sorted(i for i, _ in self.chroms.values())
        if ids != list(range(count)):  # pyBigWig indexes its arrays with these ids
            raise ValueError(f"{self.path}: damaged chromosome tree (contig ids {ids[:5]} for {count} contigs)")

    def is_complete(self) -> bool:
        """Whether the file holds everything its header points to: the index and data blocks of
        every contig, at full resolution and at every zoom level.

        A writer that runs out of disk space leaves a file whose header is whole (written first)
        but whose tail is missing; pyBigWig opens such a file and reads its contigs. The file must
        also end with the magic number, as the UCSC writers and libBigWig end it.
        """
        size = os.fstat(self._fd).st_size
        e = self._e
        if size < 68 or np.frombuffer(self._read(size - 4, 4), dtype=f"{e}u4")[0] != BIGWIG_MAGIC:
            return False
        try:
            for index in [self._index, *(int(i) for i in self._zooms()["index"])]:
                for chrom_id, length in self.chroms.values():
                    blocks = self._blocks(chrom_id, 0, length, index=index)
                    if len(blocks) and int((blocks[:, 0] + blocks[:, 1]).max()) > size:
                        return False
        except ValueError:  # an index node beyond the end of the file
            return False
        return True

    def _blocks(self, chrom_id: int, start: int, end: int, index: int | None = None) -> np.ndarray:
        """(offset, size) of the data blocks overlapping ``[start, end)`` of contig ``chrom_id``
        (in the R-tree index at offset ``index``; default the full-resolution data's)."""
        e = self._e
        index = self._index if index is None else index
        head = np.frombuffer(self._read(index, 48), dtype=np.dtype([
            ("magic", f"{e}u4"), ("block_size", f"{e}u4"), ("items", f"{e}u8"), ("sc", f"{e}u4"), ("sb", f"{e}u4"),
            ("ec", f"{e}u4"), ("eb", f"{e}u4"), ("file_end", f"{e}u8"), ("per_slot", f"{e}u4"), ("reserved", f"{e}u4"),
        ]), count=1)[0]
        if head["magic"] != INDEX_MAGIC:
            raise ValueError(f"{self.path}: unreadable data index")
        bounds = [("sc", f"{e}u4"), ("sb", f"{e}u4"), ("ec", f"{e}u4"), ("eb", f"{e}u4")]
        leaf = np.dtype([*bounds, ("offset", f"{e}u8"), ("size", f"{e}u8")])
        inner = np.dtype([*bounds, ("child", f"{e}u8")])
        lo, hi = (chrom_id, start), (chrom_id, end)
        found, pending = [], [index + 48]
        while pending:
            node = pending.pop()
            is_leaf, count = self._read(node, 1)[0], int(np.frombuffer(self._read(node + 2, 2), dtype=f"{e}u2")[0])
            kind = leaf if is_leaf else inner
            items = np.frombuffer(self._read(node + 4, count * kind.itemsize), dtype=kind)
            # an item [sc:sb, ec:eb) overlaps [lo, hi) when it starts before hi and ends after lo
            starts_before = (items["sc"] < hi[0]) | ((items["sc"] == hi[0]) & (items["sb"] < hi[1]))
            ends_after = (items["ec"] > lo[0]) | ((items["ec"] == lo[0]) & (items["eb"] > lo[1]))
            hits = items[starts_before & ends_after]
            if is_leaf:
                found.append(np.stack([hits["offset"], hits["size"]], axis=1).astype(np.int64))
            else:
                pending.extend(int(c) for c in hits["child"][::-1])
        return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)

    # ------------------------------------------------------------------ data
    def intervals(self, chrom: str, start: int, end: int):
        """``(starts, ends, values)`` of the items overlapping ``[start, end)``, or None when the
        file holds something this reader does not decode (an unknown section type).

        Items are returned whole (not clipped), sorted by start, as stored.
        """
        chrom_id = self.chroms[chrom][0]
        blocks = self._blocks(chrom_id, start, end)
        if not len(blocks):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        first, last = int(blocks[:, 0].min()), int((blocks[:, 0] + blocks[:, 1]).max())
        span = self._read(first, last - first)  # blocks of a region lie together: one read
        parts = []
        for offset, size in blocks:
            raw = span[offset - first : offset - first + size]
            part = self._section(zlib.decompress(raw) if self._compressed else raw, chrom_id)
            if part is None:
                return None
            parts.append(part)
        s, t, v = (np.concatenate(x) for x in zip(*parts))
        keep = (t > start) & (s < end)
        return s[keep], t[keep], v[keep]

    def _section(self, raw: bytes, chrom_id: int):
        e = self._e
        head = np.frombuffer(raw, dtype=np.dtype([
            ("chrom", f"{e}u4"), ("start", f"{e}u4"), ("end", f"{e}u4"), ("step", f"{e}u4"), ("span", f"{e}u4"),
            ("type", "u1"), ("reserved", "u1"), ("count", f"{e}u2"),
        ]), count=1)[0]
        n, kind = int(head["count"]), int(head["type"])
        if head["chrom"] != chrom_id:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.float32)
        if kind == 1:  # bedGraph: start, end, value
            items = np.frombuffer(raw, dtype=np.dtype([("s", f"{e}u4"), ("e", f"{e}u4"), ("v", f"{e}f4")]), count=n, offset=24)
            return items["s"].astype(np.int64), items["e"].astype(np.int64), items["v"].astype(np.float32)
        if kind == 2:  # variableStep: start, value; span from the header
            items = np.frombuffer(raw, dtype=np.dtype([("s", f"{e}u4"), ("v", f"{e}f4")]), count=n, offset=24)
            s = items["s"].astype(np.int64)
            return s, s + int(head["span"]), items["v"].astype(np.float32)
        if kind == 3:  # fixedStep: values only; starts from the header's start and step
            v = np.frombuffer(raw, dtype=f"{e}f4", count=n, offset=24).astype(np.float32)
            s = int(head["start"]) + int(head["step"]) * np.arange(n, dtype=np.int64)
            return s, s + int(head["span"]), v
        return None

    def bin_sums(self, chrom: str, start: int, end: int, bin_size: int, *, label: str = "", check: bool = True):
        """Sum of the signal over each ``bin_size`` bin of ``[start, end)`` (no coverage counts 0).

        The last bin ends at ``end`` (it may be shorter). Returns float64 sums, or None when the
        file needs the pyBigWig path (overlapping items or an unknown section type).

        Raises
        ------
        DataError
            NaN or infinite values in the region (with ``check``).
        """
        found = self.intervals(chrom, start, end)
        if found is None:
            return None
        s, t, v = found
        if len(s) > 1 and (np.any(s[1:] < t[:-1])):
            return None  # overlapping items: pyBigWig's values() says which one wins
        if check and not np.isfinite(v).all():
            kind = "NaN" if np.isnan(v).any() else "infinite"
            raise DataError(
                f"{label or self.path}: {kind} values in {chrom}:{start:,}-{end:,}; a bigWig track must hold "
                "finite numbers (no coverage is written as a gap, not NaN). Fix or regenerate the file"
            )
        v = np.where(np.isnan(v), 0.0, v).astype(np.float64)  # NaN is no coverage, as in pyBigWig's values()
        return _bin_sums(np.clip(s, start, end) - start, np.clip(t, start, end) - start, v, end - start, bin_size)


def _bin_sums(starts, ends, values, length: int, bin_size: int) -> np.ndarray:
    """Sum of a piecewise-constant signal over each ``bin_size`` bin of ``[0, length)``.

    Items ``[starts, ends)`` with ``values`` (sorted, not overlapping, inside ``[0, length)``) add
    ``value x overlap`` to each bin they touch: the part in their first bin and the part in their
    last bin (two weighted bincounts), and ``value x bin_size`` to every bin in between (a
    difference array and its running sum). Cost: linear in items plus bins, no per-base array.
    """
    n = -(-length // bin_size)
    first, last = starts // bin_size, np.maximum(ends - 1, starts) // bin_size
    spans = (last > first).astype(np.float64)
    head = values * (np.minimum(ends, (first + 1) * bin_size) - starts)
    tail = values * spans * (ends - last * bin_size)
    sums = np.bincount(first, weights=head, minlength=n) + np.bincount(last, weights=tail, minlength=n)
    full = values * spans * bin_size  # bins first+1 .. last-1 (none when last == first + 1)
    middle = np.bincount(first + 1, weights=full, minlength=n + 1) - np.bincount(last, weights=full, minlength=n + 1)
    return sums + np.cumsum(middle[:n])
