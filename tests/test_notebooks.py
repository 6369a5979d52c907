"""The notebooks run from top to bottom on the small demo city, on a kernel of this virtualenv
(each notebook asserts its own findings, e.g. that its independent count agrees with the check-up)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
EXECUTED = Path(__file__).resolve().parents[1] / "test-output" / "notebooks"


def _printed(book) -> str:
    return "".join(
        out.get("text", "")
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )


def _investment_assets(book, output: Path) -> None:
    """Notebook 02 names three assets and maps them, offline, in the folder it was given."""
    line = next(x for x in _printed(book).splitlines() if x.startswith("最佳三处 best three:"))
    codes = re.findall(r"ZC\d{10}", line)
    assert len(codes) == len(set(codes)) == 3, line
    page = (output / "02_investment_assets_map.html").read_text(encoding="utf-8")
    assert "L.map(" in page and ".leaflet-container" in page  # Leaflet inside the page
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=", page)
    assert all(code in page for code in codes)
    shutil.copy(output / "02_investment_assets_map.html", EXECUTED)  # for a person to open


def _safety_map(book, output: Path) -> None:
    """Notebook 03 reports the week's hazards by street and ten hot spots, mapped offline."""
    printed = _printed(book)
    assert re.search(r"\d+ hazards due this week; \d+ closed on time", printed), printed
    page = (output / "03_safety_map.html").read_text(encoding="utf-8")
    assert "L.map(" in page and not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=", page)
    assert len(set(re.findall(r"\b89[0-9a-f]{13}\b", page))) == 10  # the ten H3 cells (res 9)
    shutil.copy(output / "03_safety_map.html", EXECUTED)


#: what a notebook must have found and written, beyond running without an error
CHECKS = {"02_investment_assets": _investment_assets, "03_safety_map": _safety_map}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs(path, db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ONEMAP_NOTEBOOK_OUTPUT", str(tmp_path))  # where a notebook writes files
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute(env=os.environ.copy())
    errors = [
        out
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert errors == []
    EXECUTED.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, EXECUTED / path.name)  # the executed copy, for a person to read
    if path.stem in CHECKS:
        CHECKS[path.stem](book, tmp_path)
