"""Reading manifests: every bad file is one ManifestError naming the file and line; odd labels are labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import epitensor as et

HEADER = "biosample\tassay\tpath\n"


def write(folder: Path, name: str, content) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.tsv", b"", r"manifest .*empty.tsv is empty; write a header line"),
        ("blank.tsv", b"\n \n", r"manifest .*blank.tsv is empty"),
        ("header.tsv", HEADER, r"header.tsv lists no tracks"),
        ("extra.tsv", HEADER + "B1\tA\ta.bw\n\nB2\tA\tb.bw\tx\n", r"extra.tsv line 4 has 4 tab-separated fields but its header has 3"),
        ("extra.csv", "biosample,assay,path\nB1,A,a.bw,x\n", r"extra.csv line 2 has 4 CSV fields .*remove the extra commas or quote"),
        ("quote.csv", 'biosample,assay,path\nB1,A,a.bw\nB2,"A,b.bw\n', r"quote.csv cannot be read as a CSV table at line 3 .*close the quote"),
        ("latin1.tsv", HEADER.encode() + "B1\tA\ta.bw\nHépatocyte\tA\tb.bw\n".encode("latin-1"), r"latin1.tsv is not UTF-8 text \(byte 0xe9 on line 3\); save it as UTF-8"),
        ("nul.tsv", HEADER + "B1\tA\ta\x00.bw\n", r"nul.tsv holds a NUL byte on line 2; is it a text file"),
        ("space.tsv", HEADER + "B1\tA\ta.bw\n\nB2\t   \tb.bw\n", r"space.tsv: empty assay in line\(s\) \[4\]"),
        ("short.tsv", HEADER + "B1\tA\n", r"short.tsv: empty path in line\(s\) \[2\]"),
        ("twice.tsv", "biosample\tBiosample\tassay\tpath\nB1\tB1\tA\ta.bw\n", r"twice.tsv has column\(s\) \['biosample'\] more than once"),
    ],
)
def test_bad_manifest_files_raise_one_manifest_error(tmp_path, name, content, message):
    with pytest.raises(et.ManifestError, match=message):
        et.read_manifest(write(tmp_path, name, content))


def test_na_none_and_hash_labels_are_labels(tmp_path):
    text = HEADER + "NA\tNone\ta.bw\n#E003\tH3K4me3\tb.bw\nnan\t  NULL \tc.bw\n"
    table = et.read_manifest(write(tmp_path, "odd.tsv", text))
    assert table[["biosample", "assay"]].values.tolist() == [["NA", "None"], ["#E003", "H3K4me3"], ["nan", "NULL"]]
    assert table.path.tolist() == [str(tmp_path / f) for f in ("a.bw", "b.bw", "c.bw")]


def test_byte_order_mark_windows_line_ends_and_quoted_commas(tmp_path):
    text = '\ufeffBiosample,Assay,Path\r\n"liver, adult",H3K27ac,a.bw\r\nB2,H3K27ac,b.bw\r\n'
    table = et.read_manifest(write(tmp_path, "m.csv", text))
    assert table[["biosample", "assay"]].values.tolist() == [["liver, adult", "H3K27ac"], ["B2", "H3K27ac"]]


def test_dataframe_rows_are_counted_from_one(tmp_path):
    frame = pd.DataFrame({"biosample": ["B1", None], "assay": ["A", "A"], "path": ["a.bw", "b.bw"]})
    with pytest.raises(et.ManifestError, match=r"the manifest DataFrame: empty biosample in row\(s\) \[2\]"):
        et.read_manifest(frame)
    with pytest.raises(et.ManifestError, match="lists no tracks"):
        et.read_manifest(frame.iloc[:0])


# ---------------------------------------------------------------------- properties
ODD_LABELS = ["NA", "None", "nan", "NULL", "#E003", "# E003", "-", "001", "1e3", "É003", "肝细胞", "E004 ", "  E005", "", "   "]
#: Label characters: anything printable but the separators, quotes and line breaks of a table.
LABEL_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters='\t,"'),
    max_size=8,
)
LABELS = st.one_of(st.sampled_from(ODD_LABELS), LABEL_TEXT)
FAST = settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])


@st.composite
def manifest_files(draw):
    """(file name, text, rows written) with random labels, blank lines, padding and bad rows."""
    sep = draw(st.sampled_from(["\t", ","]))
    rows = draw(st.lists(st.tuples(LABELS, LABELS, st.booleans()), min_size=1, max_size=6))
    header = sep.join(draw(st.permutations(["biosample", "assay", "path"])))
    columns = header.split(sep)
    lines, written = [header], []
    for i, (biosample, assay, extra) in enumerate(rows):
        while draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from(["", " ", sep * 2])))  # blank lines are skipped
        fields = {"biosample": biosample, "assay": assay, "path": f"t{i}.bw"}
        line = sep.join(fields[c] for c in columns) + (sep + "x" if extra else "")
        lines.append(line)
        written.append((biosample, assay, extra, len(lines)))
    return ("m.csv" if sep == "," else "m.tsv"), "\n".join(lines) + "\n", written


def expected_outcome(written):
    """What a correct reader gives: the first line with too many fields, else the lines with an
    empty biosample (then assay), else a repeated track, else the stripped labels."""
    for _, _, extra, line in written:
        if extra:
            return f"line {line} has 4"
    for kind, column in (("biosample", 0), ("assay", 1)):
        empty = [row[3] for row in written if not row[column].strip()]
        if empty:
            return f"empty {kind} in line(s) {empty[:10]}"
    pairs = [(b.strip(), a.strip()) for b, a, _, _ in written]
    if len(set(pairs)) < len(pairs):
        return "more than once"
    return pairs


@FAST
@given(manifest_files())
def test_manifest_reader_gives_the_labels_written_or_a_manifest_error(tmp_path, case):
    name, text, written = case
    expected = expected_outcome(written)
    path = write(tmp_path, name, text)
    if isinstance(expected, str):
        with pytest.raises(et.ManifestError) as err:
            et.read_manifest(path)
        assert expected in str(err.value) and str(path) in str(err.value)
    else:
        table = et.read_manifest(path)
        assert list(zip(table.biosample, table.assay)) == expected
        assert table.path.tolist() == [str(tmp_path / f"t{i}.bw") for i in range(len(written))]


@FAST
@given(
    st.sampled_from(["m.tsv", "m.csv"]),
    st.one_of(st.binary(max_size=120), st.binary(max_size=120).map(lambda b: HEADER.encode() + b), st.text(max_size=120).map(lambda t: (HEADER + t).encode())),
)
def test_any_file_is_a_table_or_a_manifest_error(tmp_path, name, content):
    try:
        table = et.read_manifest(write(tmp_path, name, content))
    except et.ManifestError as err:
        assert str(tmp_path / name) in str(err)
    else:
        assert len(table) > 0 and list(table.columns[:3]) == ["biosample", "assay", "path"]
