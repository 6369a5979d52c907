"""The pages in a real browser: Debian's headless Chromium, driven by selenium through Debian's
chromedriver, on a served port. Every page loads with no request leaving 127.0.0.1 and no console
error, a map draws, and a name carrying script is shown, never run. Screenshots are saved in
test-output/screenshots/ for a person to look at."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed"
)
SHOTS = Path(__file__).resolve().parents[1] / "test-output" / "screenshots"
XSS = '<img src=x onerror="window.__xss=1">避难所'


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report_id(engine, tmp_path_factory):
    """An ingest of shelters, one of whose names carries script (it is stored as text)."""
    from layers.ingest import ingest

    path = tmp_path_factory.mktemp("xss") / "shelters.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["编号", "名称", "经度", "纬度", "可容纳人数"])
        writer.writerow(["X1", XSS, "119.0300", "31.6500", "100"])
        writer.writerow(["X2", "永阳广场避难所", "119.0350", "31.6520", "300"])
    with engine.begin() as conn:
        report = ingest(conn, path, "emergency_shelters", "区应急管理局", "EPSG:4490")
    return report.id


def _visit(browser, url: str, name: str, *, errors_expected: bool = False) -> dict:
    """Load a page; return what it requested, what it logged, and save a screenshot."""
    browser.get_log("performance")  # forget what came before
    browser.get_log("browser")
    browser.get(url)
    deadline = time.time() + 20
    while time.time() < deadline:
        state = browser.execute_script(
            "var m = document.getElementById('map');"
            "return document.readyState === 'complete' && (!m || m.getAttribute('data-ready'));"
        )
        if state:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # let the map's own requests (the district outline) come back
    requests = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    console = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))
    # what leaves the machine goes by http(s) or ws(s); chrome:// and data: are the browser's own
    offsite = [
        u
        for u in requests
        if u.startswith(("http", "ws")) and not u.startswith(("http://127.0.0.1", "ws://127.0.0.1"))
    ]
    assert offsite == [], (name, offsite)
    if not errors_expected:
        assert console == [], (name, console)
    return {"requests": requests, "console": console}


def _canvas_drawn(browser) -> int:
    """How many pixels of the map's canvas were painted (non-transparent)."""
    return browser.execute_script(
        "var c = document.querySelector('#map canvas'); if (!c) return 0;"
        "var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, n = 0;"
        "for (var i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;"
    )


def test_every_page_loads_from_this_host_only_without_console_errors(
    browser, served, report_id, client
):
    feature = client.get("/collections/facilities/items?limit=1").json()["features"][0]["id"]
    pages = {
        "landing": "/?f=html",
        "layers": "/collections?f=html",
        "collection": "/collections/buildings?f=html",
        "items": "/collections/facilities/items?f=html&limit=100",
        "item": f"/collections/facilities/items/{feature}?f=html",
        "catalogue": "/catalog?f=html",
        "queryables": "/collections/buildings/queryables?f=html",
        "report": f"/ingest/reports/{report_id}?f=html",
        "docs": "/docs",
    }
    for name, path in pages.items():
        _visit(browser, served + path, name)
        assert browser.title and browser.title != "一张图 onemap" or name == "landing", name
    _visit(browser, served + "/collections/facilities/items?f=html&limit=500", "items-map")
    assert _canvas_drawn(browser) > 500  # the features and the district outline were drawn


def test_a_browser_gets_an_error_page_in_chinese(browser, served):
    _visit(browser, served + "/collections/nowhere/items", "error-404", errors_expected=True)
    body = browser.find_element("tag name", "body").text
    assert "找不到" in body and "返回首页" in body
    assert "404" in browser.title


def test_a_name_carrying_script_is_shown_never_run(browser, served, report_id):
    _visit(browser, served + "/collections/emergency_shelters/items?f=html", "xss")
    opened = browser.execute_script(
        "var n = 0; window.onemapMap.eachLayer(function (l) {"
        "  if (l.getPopup && l.getPopup()) { l.openPopup(); n++; } }); return n;"
    )
    assert opened >= 1
    time.sleep(0.5)
    assert browser.execute_script("return window.__xss") is None
    shown = browser.find_element("tag name", "body").text
    assert "<img src=x" in shown  # as text, in the table and the popup
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0


def _map_pixels(browser) -> dict:
    """The viewer's WebGL canvas read back: painted pixels and how many colours they use."""
    return browser.execute_script(
        "var g = document.querySelector('#map canvas'); if (!g) return {painted: 0, colours: 0};"
        "var c = document.createElement('canvas'); c.width = g.width; c.height = g.height;"
        "var x = c.getContext('2d'); x.drawImage(g, 0, 0);"
        "var d = x.getImageData(0, 0, c.width, c.height).data, n = 0, seen = {};"
        "for (var i = 0; i < d.length; i += 4) { if (d[i + 3] > 0) { n++;"
        "  seen[(d[i] >> 4) + ',' + (d[i + 1] >> 4) + ',' + (d[i + 2] >> 4)] = 1; } }"
        "return {painted: n, colours: Object.keys(seen).length};"
    )


@pytest.mark.parametrize("map_id", ["safety", "assets"])
def test_the_map_viewer_draws_our_own_tiles_from_this_host_only(browser, served, map_id):
    """The one-screen viewer: MapLibre from this service, the map's style and tiles from this
    service, the map idle with varied pixels painted, and not one request leaving 127.0.0.1."""
    seen = _visit(browser, f"{served}/maps/{map_id}", f"map-{map_id}")
    assert (
        browser.execute_script("return document.getElementById('map').getAttribute('data-error')")
        is None
    )
    assert (
        browser.execute_script("return document.getElementById('map').getAttribute('data-ready')")
        == "1"
    )
    # the tiles are fetched by MapLibre's workers, which the page's network log does not see:
    # what they fetch is what the source's TileJSON names, checked to be this host's
    tiles = browser.execute_script("return window.onemapMap.getSource('onemap').tiles")
    assert tiles and all(t.startswith(served + f"/maps/{map_id}/tiles/") for t in tiles)
    drawn = browser.execute_script(  # the base map's roads and land use, at every zoom
        "return ['roads', 'landuse_parcels'].map(l => window.onemapMap"
        ".querySourceFeatures('onemap', {sourceLayer: l}).length)"
    )
    assert min(drawn) > 0, drawn
    assert any(f"/maps/{map_id}/style.json" in u for u in seen["requests"])
    pixels = _map_pixels(browser)
    assert pixels["painted"] > 10_000 and pixels["colours"] >= 4, pixels


def test_a_folium_export_opens_as_a_file_with_no_network(browser, client, tmp_path):
    """``f=folium``: one HTML file with Leaflet inside it; opened from disk it draws the
    features and requests nothing at all over the network."""
    answer = client.get("/collections/facilities/items?f=folium&limit=200")
    assert answer.status_code == 200
    assert 'filename="facilities.html"' in answer.headers["content-disposition"]
    page = tmp_path / "facilities.html"
    page.write_bytes(answer.content)
    seen = _visit(browser, page.as_uri(), "folium-export")
    assert [u for u in seen["requests"] if u.startswith(("http", "ws"))] == []
    drawn = browser.execute_script(
        "return document.querySelectorAll('.leaflet-interactive').length"
    )
    assert drawn >= 150


def test_the_district_import_report_reads_well_offline(browser, client, people, tmp_path):
    """A refused import's report page (the one the command line writes, the one the upload
    answers a browser with): problems first, per-table figures, the map of the problem rows."""
    import io
    import zipfile

    from tests import handmade_district as hand

    hand.write(tmp_path / "files")
    path = tmp_path / "files" / "设施.csv"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "东湖消防站,消防站,119.0", "东湖消防站,消防站,118.9"
        ),
        encoding="utf-8",
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for one in sorted((tmp_path / "files").iterdir()):
            archive.write(one, one.name)
    answer = client.post(
        "/city/imports?replace=true&f=html",
        content=buf.getvalue(),
        headers=people.headers("t_report_admin", "admin") | {"Content-Type": "application/zip"},
    )
    assert answer.status_code == 422  # refused: the session's district is untouched
    page = tmp_path / "import-report.html"
    page.write_bytes(answer.content)
    seen = _visit(browser, page.as_uri(), "city-import-report")
    assert [u for u in seen["requests"] if u.startswith(("http", "ws"))] == []
    body = browser.find_element("tag name", "body").text
    assert "已拒绝" in body and "outside the district" in body
    assert browser.execute_script("return document.querySelectorAll('svg circle').length") >= 1


def test_the_checkup_report_draws_every_map_from_this_host_only(
    browser, served, client, people, engine, tmp_path
):
    """城市体检: the served report (the app's own scripts, under its CSP, a planner's token sent by
    the browser) and the file the command line writes (everything inside it) draw every map."""
    from api.checkup_report import render_report

    planner = people.headers("browser_planner", "planner")
    run = client.post("/checkup/runs", json={"label": "浏览器"}, headers=planner).json()["run"]
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": planner})
    try:
        _visit(browser, f"{served}/checkup/runs/{run}/report", "checkup-report")
        served_maps = browser.execute_script("return document.querySelectorAll('.map').length")
        assert served_maps >= 19
        assert browser.execute_script("return window.onemapMapsDrawn") == served_maps
        drawn = browser.execute_script(
            "return document.querySelectorAll('.map .leaflet-interactive, .map canvas').length"
        )
        assert drawn >= served_maps
        browser.execute_script("document.querySelector('.maps').scrollIntoView()")
        time.sleep(0.5)
        browser.save_screenshot(str(SHOTS / "checkup-report-maps.png"))
        # the viewer's check-up map: pick an indicator, its areas are laid over the base map
        _visit(browser, f"{served}/maps/checkup", "checkup-map")
        browser.execute_script(
            "var s = document.getElementById('checkup-indicator');"
            "s.value = 'kindergarten_coverage'; s.dispatchEvent(new Event('change'));"
        )
        deadline = time.time() + 20
        while time.time() < deadline and not browser.execute_script(
            "return document.getElementById('map').getAttribute('data-checkup')"
        ):
            time.sleep(0.2)
        shown = browser.execute_script(
            "return document.getElementById('map').getAttribute('data-checkup')"
        )
        assert shown not in (None, "error") and int(shown) > 0, shown
        time.sleep(1.5)
        browser.save_screenshot(str(SHOTS / "checkup-map.png"))
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    with engine.connect() as conn:
        page = render_report(conn, run, run)
    path = tmp_path / "checkup-report.html"
    path.write_text(page, encoding="utf-8")
    seen = _visit(browser, path.as_uri(), "checkup-report-file")
    assert [u for u in seen["requests"] if u.startswith(("http", "ws"))] == []
    assert browser.execute_script("return window.onemapMapsDrawn") == served_maps
    assert browser.execute_script("return document.querySelectorAll('#change-chart rect').length")
