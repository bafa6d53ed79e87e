"""Property tests of the readers that take a user's files: whatever the input, a typed error or a valid result,
never another exception, and never a byte written or read outside the given input."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from reid_hub.discovery import load_collection
from reid_hub.errors import DataError
from reid_hub.video import read_crop_archive

FUZZ = settings(max_examples=80, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NAMES = st.one_of(st.text(min_size=1, max_size=30),
                  st.sampled_from(["../x.jpg", "/etc/hostname", "a/../../b.jpg", "con.jpg", "c:/x.jpg", "a\\..\\b",
                                   "crops.csv", "sub/crops.csv", "a.jpg", "./a.jpg"]))


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


@FUZZ
@given(entries=st.lists(st.tuples(NAMES, st.sampled_from(["png", "text", "table", "empty"])), min_size=1,
                        max_size=6),
       table_rows=st.lists(st.tuples(st.one_of(st.integers(-2, 5), st.text(max_size=4)), NAMES), max_size=5))
def test_crop_archives_give_a_table_or_a_typed_error_and_write_nothing_outside(tmp_path_factory, entries, table_rows):
    root = tmp_path_factory.mktemp("fz")
    z = root / "in.zip"
    table = "frame,path\n" + "".join(f"{f},{p}\n" for f, p in table_rows)
    with zipfile.ZipFile(z, "w") as zf:
        for name, kind in entries:
            data = {"png": _png(), "text": b"hello", "table": table.encode(), "empty": b""}[kind]
            try:
                zf.writestr(name, data)
            except (ValueError, UnicodeEncodeError):
                continue
    dest = root / "out"
    try:
        crops = read_crop_archive(z, dest)
    except DataError:
        crops = None
    written = [p for p in root.rglob("*") if p.is_file() and p != z]
    assert all(dest.resolve() in p.resolve().parents for p in written), written
    if crops is not None:
        assert all(dest.resolve() in Path(p).resolve().parents for p in crops["path"])


@FUZZ
@given(text=st.text(max_size=200), paths=st.lists(NAMES, max_size=4))
def test_collection_tables_give_rows_or_a_typed_error(tmp_path_factory, text, paths):
    root = tmp_path_factory.mktemp("tab")
    (root / "a.jpg").write_bytes(_png())
    for body in (text, "path\n" + "\n".join(paths) + "\n", "path,bbox\na.jpg," + text.replace("\n", " ") + "\n"):
        f = root / "t.csv"
        f.write_text(body)
        try:
            t = load_collection(f)
        except DataError:
            continue
        assert len(t) >= 1 and all(Path(p).is_file() for p in t["image"])
