"""The 区 picker on the map pages: with Lishui (320117) and Gaochun (320118) loaded side by side, a
whole-city user picks a district; its tiles, lists and extent follow, and the address keeps it. A
district-bound user, or an installation of one district, has no picker."""

from __future__ import annotations

import re
import time

import mapbox_vector_tile
import morecantile
import pytest
from sqlalchemy import text

from tests.conftest import running_server, settings_for
from tests.test_browser import CHROMIUM, DRIVER, SHOTS, browser  # noqa: F401

LISHUI, GAOCHUN = "320117", "320118"
TMS = morecantile.tms.get("WebMercatorQuad")
OPTION = re.compile(r'<option value="(\d*)"[^>]*?( selected)?>([^<]*)</option>')


@pytest.fixture(scope="module")
def two_url(two_district_url):
    """Both districts at small scale (the session's two-district city; base data read only)."""
    return two_district_url


@pytest.fixture(scope="module")
def two(two_url):
    """The app over it, with a whole-city administrator and a planner bound to 高淳区."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.database import engine as make_engine
    from geo.policy.users import create_user, issue_token

    eng = make_engine(two_url)
    heads = {}
    with eng.begin() as conn:
        for name, role, district in (
            ("sel_admin", "admin", None),
            ("sel_bound", "planner", GAOCHUN),
            ("sel_safety", "safety", None),
        ):
            create_user(conn, name, role, district=district)
            heads[name] = {"Authorization": f"Bearer {issue_token(conn, name).token}"}
    with TestClient(create_app(settings_for(two_url))) as client:
        client.heads, client.engine = heads, eng
        yield client
    eng.dispose()


def _bbox(engine, code: str) -> list[float]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("""SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM
                        (SELECT ST_Extent(geom) AS e FROM admin_areas WHERE code = :c) x"""),
                {"c": code + "000000"},
            ).one()
        )


def _picker(html: str) -> list[tuple[str, bool, str]] | None:
    """The district picker's options (value, selected, label), or None without one."""
    found = re.search(r'<select id="district">(.*?)</select>', html, re.S)
    if found is None:
        return None
    return [(v, bool(s), label.strip()) for v, s, label in OPTION.findall(found.group(1))]


# --- the page -------------------------------------------------------------------------------


@pytest.mark.parametrize("map_id", ["base", "safety", "checkup", "assets"])
def test_a_whole_city_user_is_offered_the_city_and_each_district(two, map_id):
    page = two.get(f"/maps/{map_id}", headers=two.heads["sel_admin"])
    assert page.status_code == 200
    assert '<label for="district">区 <small>District</small></label>' in page.text
    assert _picker(page.text) == [  # none selected: the browser shows the first, 全市
        ("", False, "全市 whole city"),
        (LISHUI, False, f"溧水区 {LISHUI}"),
        (GAOCHUN, False, f"高淳区 {GAOCHUN}"),
    ]
    assert 'data-district=""' in page.text


def test_the_pages_own_district_is_preselected_and_each_option_carries_its_box(two):
    page = two.get("/maps/base", params={"district": GAOCHUN})
    options = _picker(page.text)
    assert [(v, s) for v, s, _ in options] == [("", False), (LISHUI, False), (GAOCHUN, True)]
    assert f'data-district="{GAOCHUN}"' in page.text
    boxes = re.findall(r'<option value="(\d+)" data-bbox="\[([^\]]+)\]"', page.text)
    for code, box in boxes:
        west, south, east, north = (float(v) for v in box.split(","))
        assert [round(v, 4) for v in (west, south, east, north)] == [
            round(v, 4) for v in _bbox(two.engine, code)
        ]
    assert {code for code, _ in boxes} == {LISHUI, GAOCHUN}
    assert two.get("/maps/base", params={"district": "320199"}).status_code == 400


def test_a_district_bound_user_has_no_picker(two):
    page = two.get("/maps/base", headers=two.heads["sel_bound"])
    assert page.status_code == 200 and _picker(page.text) is None
    assert 'id="district"' not in page.text
    # in a browser the page is fetched without the token: the style, fetched with it, tells
    style = two.get("/maps/base/style.json", headers=two.heads["sel_bound"]).json()
    assert style["metadata"]["onemap:district"] == GAOCHUN
    assert "onemap:district" not in two.get("/maps/base/style.json").json()["metadata"]
    other = two.get("/maps/base", params={"district": LISHUI}, headers=two.heads["sel_bound"])
    assert other.status_code == 403


def test_one_district_loaded_means_no_picker(client):
    page = client.get("/maps/base")
    assert page.status_code == 200 and _picker(page.text) is None
    assert 'data-district=""' in page.text


# --- tiles ----------------------------------------------------------------------------------


def _ids(answer) -> set[int]:
    assert answer.status_code == 200
    tile = mapbox_vector_tile.decode(answer.content) if answer.content else {}
    return {f["id"] for f in tile.get("landuse_parcels", {}).get("features", [])}


def test_a_districts_tile_leaves_out_the_other_district_and_is_cached_apart(two):
    with two.engine.connect() as conn:
        lon, lat = conn.execute(
            text("""SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(ST_Intersection(
                        ST_Buffer(a.geom, 0.01), ST_Buffer(b.geom, 0.01))) AS p
                    FROM admin_areas a, admin_areas b WHERE a.code = :l AND b.code = :g) x"""),
            {"l": LISHUI + "000000", "g": GAOCHUN + "000000"},
        ).one()
    t = TMS.tile(lon, lat, 12)  # on the two districts' common boundary
    url = f"/maps/base/tiles/{t.z}/{t.x}/{t.y}.mvt"
    admin = two.heads["sel_admin"]
    city = two.get(url, headers=admin)
    narrow = two.get(url, params={"district": GAOCHUN}, headers=admin)
    left_out = _ids(city) - _ids(narrow)
    assert _ids(narrow) and _ids(narrow) < _ids(city) and left_out
    with two.engine.connect() as conn:  # what was left out is Lishui's only
        meets = conn.execute(
            text("""SELECT count(*) FROM landuse_parcels p, admin_areas a
                    WHERE p.id = ANY(:ids) AND a.code = :g AND ST_Intersects(p.geom, a.geom)"""),
            {"ids": list(left_out), "g": GAOCHUN + "000000"},
        ).scalar_one()
    assert meets == 0
    assert narrow.headers["etag"] != city.headers["etag"]
    again = two.get(url, params={"district": GAOCHUN}, headers=admin)
    assert (
        again.headers["x-tile-cache"] == "hit" and again.headers["etag"] == narrow.headers["etag"]
    )
    whole = two.get(url, headers=admin)
    assert whole.headers["x-tile-cache"] == "hit" and whole.headers["etag"] == city.headers["etag"]


# --- in a browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_two(two_url, two):
    """The app served, and the paths of the map tiles it was asked for (its access log): MapLibre
    fetches tiles in a web worker, whose requests the page's own records do not show."""
    import threading

    with running_server(two_url, log_level="info") as (base, proc):
        asked: list[str] = []

        def read():
            for line in proc.stdout:
                found = re.search(r'"GET (/\S+) HTTP', line)
                if found:
                    asked.append(found.group(1))

        threading.Thread(target=read, daemon=True).start()
        yield base, asked
        proc.kill()  # a warnings stream may still be open: no graceful wait for it
        proc.wait(timeout=15)


def _tiles_asked(asked: list[str], since: int, path: str = "/maps/base/tiles/") -> list[str]:
    time.sleep(1.0)  # the last answers' log lines
    return [u for u in asked[since:] if u.startswith(path)]


def _wait(browser, script: str, seconds: float = 20):  # noqa: F811
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = browser.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    return None


def _view(browser) -> dict:  # noqa: F811
    return browser.execute_script(
        "var m = window.onemapMap, b = m.getBounds(), c = m.getCenter();"
        "return {west: b.getWest(), south: b.getSouth(), east: b.getEast(), north: b.getNorth(),"
        " lon: c.lng, lat: c.lat};"
    )


@pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed"
)
def test_choosing_gaochun_narrows_tiles_keeps_the_address_and_fits_the_map(
    browser,  # noqa: F811
    served_two,
    two,
):
    from selenium.webdriver.support.ui import Select

    base, asked = served_two
    gaochun, lishui = _bbox(two.engine, GAOCHUN), _bbox(two.engine, LISHUI)
    browser.get_log("browser")
    browser.get(base + "/maps/base")
    assert _wait(browser, "return document.getElementById('map').getAttribute('data-ready')")
    before = _tiles_asked(asked, 0)
    assert before and not any("district=" in u for u in before)
    assert _view(browser)["north"] > lishui[3] - 0.05  # the whole city: Lishui's north in view

    mark = len(asked)
    Select(browser.find_element("id", "district")).select_by_value(GAOCHUN)
    time.sleep(1.0)
    assert _wait(browser, "return window.onemapMap.loaded()")
    after = _tiles_asked(asked, mark)
    assert after and all(f"district={GAOCHUN}" in u for u in after), after
    assert browser.execute_script("return location.search") == f"?district={GAOCHUN}"
    view = _view(browser)
    assert gaochun[0] < view["lon"] < gaochun[2] and gaochun[1] < view["lat"] < gaochun[3], view
    assert view["north"] < lishui[3] - 0.05, view  # Lishui's north is no longer in view
    assert browser.execute_script(
        "return window.onemapMap.getSource('onemap').tiles.every("
        f"function (u) {{ return u.indexOf('district={GAOCHUN}') > 0; }})"
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "map-district-gaochun.png"))

    mark = len(asked)
    browser.refresh()  # the address alone brings the district back
    assert _wait(browser, "return document.getElementById('map').getAttribute('data-ready')")
    assert (
        Select(browser.find_element("id", "district")).first_selected_option.get_attribute("value")
        == GAOCHUN
    )
    tiles = _tiles_asked(asked, mark)
    assert tiles and all(f"district={GAOCHUN}" in u for u in tiles), tiles
    view = _view(browser)
    assert gaochun[0] < view["lon"] < gaochun[2] and gaochun[1] < view["lat"] < gaochun[3], view

    mark = len(asked)
    Select(browser.find_element("id", "district")).select_by_value("")  # back to 全市
    time.sleep(1.0)
    assert _wait(browser, "return window.onemapMap.loaded()")
    assert browser.execute_script("return location.search") == ""
    tiles = _tiles_asked(asked, mark)
    assert tiles and not any("district=" in u for u in tiles), tiles
    assert _view(browser)["north"] > lishui[3] - 0.05
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


@pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed"
)
def test_the_safety_maps_lists_and_stream_follow_the_district(browser, served_two, two):  # noqa: F811
    from selenium.webdriver.support.ui import Select

    base, asked = served_two
    token = two.heads["sel_safety"]["Authorization"].split()[1]
    browser.get(f"{base}/maps/safety#token={token}")
    try:
        assert _wait(browser, "return document.getElementById('map').getAttribute('data-risk')")
        city_risk = int(
            browser.execute_script("return document.getElementById('map').dataset.risk")
        )
        mark = len(asked)
        Select(browser.find_element("id", "district")).select_by_value(GAOCHUN)
        gaochun_risk = _wait(  # the map never rests here (the warnings pulse): wait for the count
            browser,
            "var n = +document.getElementById('map').dataset.risk;"
            f"return n && n < {city_risk} ? n : null;",
        )
        assert gaochun_risk, city_risk  # Gaochun's grids only
        for path in ("/safety/risk", "/safety/warnings?", "/safety/warnings/stream"):
            got = _tiles_asked(asked, mark, path)
            assert got and all(f"district={GAOCHUN}" in u for u in got), (path, asked[mark:])
    finally:
        browser.get("about:blank")  # the warnings stream closed, so the server stops at once
