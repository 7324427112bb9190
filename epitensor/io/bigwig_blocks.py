"""The layout of a bigWig file's header and indexes, checked before a C library follows it.

pyBigWig (libBigWig) follows the offsets of a bigWig header without checking them and can crash
the interpreter on a damaged file; libBigWig also only prints its write errors, leaving a
truncated file when the disk fills up. :class:`BigWigBlocks` reads what the UCSC bigWig
specification (Kent et al. 2010) lays out ahead of the data (the header, the zoom headers, the
chromosome B+ tree and the R-tree indexes) and checks that it lies inside the file
(:meth:`BigWigBlocks.check_layout`) and that every block the indexes point to is there
(:meth:`BigWigBlocks.is_complete`). It decodes no data: binned values are read with pybigtools
(:func:`epitensor.io.bigwig.interval_bin_means`).
"""

from __future__ import annotations

import os

import numpy as np

BIGWIG_MAGIC = 0x888FFC26
CHROM_TREE_MAGIC = 0x78CA8C91
INDEX_MAGIC = 0x2468ACE0


class BigWigBlocks:
    """The contigs and the data-block indexes of one bigWig file, opened for layout checks.

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
    >>> with BigWigBlocks("H1_k27ac.bw") as reader:   # doctest: +SKIP
    ...     reader.check_layout(); reader.is_complete()
    True
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
        self.chrom_tree, self._index = int(header["chrom_tree"]), int(header["index"])
        self._zoom_levels, self._data = int(header["zoom_levels"]), int(header["data"])
        self._total_summary = int(header["total_summary"])

    def _read_chrom_tree(self) -> dict[str, tuple[int, int]]:
        """Contig name -> (id, length), from the chromosome B+ tree."""
        e = self._e
        magic, block_size, key_size, val_size = np.frombuffer(self._read(self.chrom_tree, 16), dtype=f"{e}u4")
        if magic != CHROM_TREE_MAGIC or val_size != 8:
            raise ValueError(f"{self.path}: unreadable chromosome tree")
        leaf = np.dtype([("key", f"S{key_size}"), ("id", f"{e}u4"), ("size", f"{e}u4")])
        inner = np.dtype([("key", f"S{key_size}"), ("child", f"{e}u8")])
        out: dict[str, tuple[int, int]] = {}
        pending = [self.chrom_tree + 32]
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
        offsets = [self.chrom_tree, self._data, self._index, *zooms["data"].tolist(), *zooms["index"].tolist()]
        if self._total_summary:
            offsets.append(self._total_summary)
        if self._zoom_levels > 10 or any(not 64 <= int(o) < size for o in offsets):
            raise ValueError(f"{self.path}: damaged header (an offset outside the file's {size:,} bytes)")
        if np.frombuffer(self._read(self._index, 4), dtype=f"{self._e}u4")[0] != INDEX_MAGIC:
            raise ValueError(f"{self.path}: unreadable data index")
        count = int(np.frombuffer(self._read(self.chrom_tree + 16, 8), dtype=f"{self._e}u8")[0])
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
                    blocks = self.data_blocks(chrom_id, 0, length, index=index)
                    if len(blocks) and int((blocks[:, 0] + blocks[:, 1]).max()) > size:
                        return False
        except ValueError:  # an index node beyond the end of the file
            return False
        return True

    def data_blocks(self, chrom_id: int, start: int, end: int, index: int | None = None) -> np.ndarray:
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
