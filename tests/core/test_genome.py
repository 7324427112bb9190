"""The genome layout: bins, contig alignment, aliases, attrs round trip."""

import numpy as np
import pytest

import epitensor as et
from epitensor.genome import n_bins


def test_bins_per_contig_follow_the_science():
    # bins per chromosome = (length - 1) // 25 + 1
    assert n_bins(25) == 1 and n_bins(26) == 2 and n_bins(1) == 1
    g = et.Genome.from_assembly("hg19", contigs=["chr1"])
    assert g.n_bins("chr1") == (249_250_621 - 1) // 25 + 1


def test_contigs_start_on_chunk_boundaries_and_do_not_overlap():
    g = et.Genome.from_assembly("hg38")
    table = g.contig_table()
    assert (table.first_bin % g.chunk_bins == 0).all()
    ends = table.first_bin + table.n_bins
    assert (table.first_bin.to_numpy()[1:] >= ends.to_numpy()[:-1]).all()
    assert g.n_positions == int(ends.iloc[-1])
    assert list(table.index[:3]) == ["chr1", "chr2", "chr3"]
    assert table.loc["chr1", "length"] == 248_956_422


def test_aliases_resolve():
    g = et.Genome.from_assembly("hg38")
    assert g.resolve("1") == "chr1" and g.resolve("X") == "chrX" and g.resolve("MT") == "chrM"
    assert g.resolve("CHR2") == "chr2"
    with pytest.raises(et.GenomeError, match="not in genome"):
        g.resolve("chrUn_xyz")


def test_locate_maps_positions_back_to_coordinates():
    g = et.Genome.from_assembly("hg38", contigs=["chr21", "chr22"])
    first22, end22 = g.contig_bins("chr22")
    names, starts = g.locate([0, 3, first22 + 10, g.n_bins("chr21") + 1])
    assert list(names) == ["chr21", "chr21", "chr22", ""]
    assert list(starts) == [0, 75, 250, -1]


def test_attrs_round_trip_and_mismatch_messages():
    g = et.Genome.from_assembly("hg38", contigs=["chr21"])
    assert et.Genome.from_attrs(g.to_attrs()) == g
    h = et.Genome.from_assembly("hg19", contigs=["chr21"])
    with pytest.raises(et.GenomeError, match="assembly"):
        g.check_same(h)
    other = et.Genome("hg38", ["chr21"], [h.length("chr21")])
    with pytest.raises(et.GenomeError, match="different genome build"):
        g.check_same(other)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(assembly="x", contigs=[], lengths=[]), "at least one contig"),
        (dict(assembly="x", contigs=["a", "a"], lengths=[1, 2]), "unique"),
        (dict(assembly="x", contigs=["a"], lengths=[0]), "positive"),
        (dict(assembly="x", contigs=["a", "b"], lengths=[1]), "one length per contig"),
    ],
)
def test_bad_genomes(kwargs, message):
    with pytest.raises(et.GenomeError, match=message):
        et.Genome(**kwargs)


def test_unknown_assembly_points_to_alternatives():
    with pytest.raises(et.GenomeError, match="from_chrom_sizes"):
        et.Genome.from_assembly("mm10")


def test_chrom_sizes_file(tmp_path):
    p = tmp_path / "g.sizes"
    p.write_text("chrA\t1000\nchrB\t60\n")
    g = et.Genome.from_chrom_sizes("toy", p)
    assert g.contigs == ("chrA", "chrB") and np.array_equal(g.first_bins, [0, g.chunk_bins])
