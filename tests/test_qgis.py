"""QGIS reads the service and opens every map's project (issue 17), with Debian's own PyQGIS.

The probe (tests/qgis_probe.py) runs under the system Python, headless, against the served app
and writes what QGIS saw; these tests judge it. Skipped where ``qgis`` / ``python3-qgis`` are not
installed (``make test`` installs them as root). Its PNGs are kept in test-output/qgis/.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "test-output" / "qgis"


def _has_qgis() -> bool:
    try:
        return (
            subprocess.run(
                [SYSTEM_PYTHON, "-c", "import qgis.core"],
                capture_output=True,
                env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
                timeout=60,
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.qgis


@pytest.fixture(scope="module")
def seen(served) -> dict:
    if not _has_qgis():
        pytest.skip("PyQGIS missing: apt-get install qgis python3-qgis (make test does, as root)")
    OUT.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    run = subprocess.run(
        [SYSTEM_PYTHON, str(HERE / "qgis_probe.py"), served, str(OUT)],
        env=env | {"QT_QPA_PLATFORM": "offscreen", "HOME": str(OUT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads((OUT / "probe.json").read_text())


def test_every_layer_opens_with_its_count(seen):
    layers = seen["layers"]
    assert layers
    wrong = {
        i: (s.get("iterated"), s["numberMatched"])
        for i, s in layers.items()
        if not s["valid"] or s.get("iterated") != s["numberMatched"]
    }
    assert wrong == {}, "layer: (QGIS read, numberMatched)"


def test_the_id_is_kept(seen, served):
    one = httpx.get(f"{served}/collections/facilities/items?limit=1").json()["features"][0]
    if "id" not in one["properties"]:
        pytest.skip("server does not yet serve the feature id as an 'id' property (issue 17)")
    checked = {i: s["id_check"] for i, s in seen["layers"].items() if "id_check" in s}
    missing = [i for i, s in seen["layers"].items() if "id" not in s.get("fields", [])]
    assert missing == []
    assert checked and all(c["qgis"] == [c["server"]] for c in checked.values()), checked


def test_a_view_fetches_only_its_box(seen):
    box = seen["bbox"]
    assert box["requests"] and all("bbox=" in u for u in box["requests"]), box["requests"]
    assert box["outside"] == 0
    assert box["count"] == box["expected"] > 0


def test_subset_strings_on_dates(seen, served):
    checks = seen["subset"]
    assert checks, "no public layer with a date field to filter"
    open_start = httpx.get(
        f"{served}/collections/{checks[0]['layer']}/items",
        params={"datetime": "0000-01-01T00:00:00Z/..", "limit": 1},
    )
    wrong = [c for c in checks if c["count"] != c["expected"]]
    if wrong and open_start.status_code != 200:
        pytest.skip(
            "server does not yet take open starts as datetime=0000-01-01T00:00:00Z/.. "
            f"({open_start.status_code}), which QGIS sends (issue 17)"
        )
    assert wrong == [], wrong
    assert {c["subset"].split()[1] for c in checks} == {"<=", ">="}


def test_every_project_opens_and_renders(seen):
    projects = seen["projects"]
    assert set(projects) == {"base", "checkup", "assets", "safety"}
    for map_id, p in projects.items():
        assert p["read"] and p["crs"] == "EPSG:3857", map_id
        assert all(layer["valid"] for layer in p["layers"].values()), (map_id, p["layers"])
        providers = {layer["provider"] for layer in p["layers"].values()}
        assert "vectortile" in providers and "OAPIF" in providers, (map_id, providers)
        assert Path(p["png"]).is_file()
        assert p["colours"] >= 4 and p["painted"] > 0.2, (map_id, p)


def test_the_project_holds_no_token_and_restricts_to_the_view(client, tokens):
    from tests.conftest import auth

    answer = client.get("/maps/safety/project.qgs", headers=auth(tokens, "safety"))
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == 'attachment; filename="safety.qgs"'
    text = answer.text
    assert tokens["safety"] not in text and "Bearer" not in text
    assert "restrictToRequestBBOX='1'" in text and "安全隐患" in text
    assert "/maps/safety/tiles/{z}/{x}/{y}.mvt" in text
    for page in ("/?f=html", "/catalog?f=html"):
        assert "/maps/safety/project.qgs" in client.get(page).text
