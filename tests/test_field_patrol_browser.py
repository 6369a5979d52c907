"""A patrol (巡查) in the grid worker's app (/field), in headless Chromium at a phone's size
(360 × 740): sign in through the form, start a patrol, walk a scripted track along a street of
worker A's grid (Chromium's geolocation override, which the app's watchPosition follows), verify
three records on their detail views (building, house, resident), report a hazard with a photo
(a small real PNG set on the file input), end the patrol and read its summary. Then the database:
the track holds the scripted points, three verifications on the patrol, the records' versions
unchanged and verified_by set, the hazard reported with its photo evidence on disk, the patrol
ended with its buildings, verified records and hazard. No request leaves 127.0.0.1; screenshots
go to test-output/screenshots/field-patrol-*.png.

The app runs on its own server here, with its own photo folder (the hazard's evidence lands
there)."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from geo.models.hazards import HAZARD_CATEGORIES
from tests import test_field_app as app_tests
from tests.conftest import running_server
from tests.test_browser import CHROMIUM, DRIVER
from tests.test_field_app import PASSWORD, _attr, _click, _network, _offsite, _shot, _view, _wait
from tests.test_field_patrols import street_track, visited_by_shapely

# the phone (Chromium at 360 × 740, geolocation granted for the origin) and worker A with a
# password, as the field app's own test makes them; `phone` opens this module's `field_base`
phone = app_tests.phone
worker = app_tests.worker

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed"
)


def png(width: int = 8, height: int = 8) -> bytes:
    """A small real PNG (an orange square), made here."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + b"\xf0\x80\x20" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return tmp_path_factory.mktemp("patrol-browser-photos")


@pytest.fixture(scope="module")
def field_base(db_url, photos):
    """The app on its own port and photo folder (``phone`` from test_field_app opens it)."""
    with running_server(db_url, workers=1, extra_env={"ONEMAP_PHOTOS": str(photos)}) as (base, _):
        yield base


@pytest.fixture(scope="module")
def targets(engine, worker):
    """A building of worker A's grid with a house with a resident: the three records verified."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                text("""SELECT b.id AS building, b.code, h.id AS house, r.id AS resident
                    FROM buildings b JOIN houses h ON h.building_id = b.id
                    JOIN residents r ON r.house_id = h.id
                    WHERE b.grid_code = :g AND h.grid_code = :g AND r.grid_code = :g
                    ORDER BY b.id DESC, h.id, r.id LIMIT 1"""),
                {"g": worker["grid"]},
            )
            .mappings()
            .one()
        )
    return dict(row)


def _stamps(engine, targets) -> dict:
    out = {}
    with engine.connect() as conn:
        for table, key in (
            ("buildings", "building"),
            ("houses", "house"),
            ("residents", "resident"),
        ):
            out[table] = (
                conn.execute(
                    text(
                        f"SELECT id, version, verified_at, verified_by FROM {table} WHERE id = :i"
                    ),
                    {"i": targets[key]},
                )
                .mappings()
                .one()
            )
    return out


def _verify_here(driver, rtype: str, rid: int, version: int) -> None:
    """Press 核实 on the open detail view; the stamp shows the worker and the unchanged version."""
    _view(driver, rtype, rid)
    _click(driver, "#verify-record")
    _wait(driver, "document.querySelector('#verify-stamp[data-verified-by]')", f"{rtype} stamped")
    stamp = driver.find_element("id", "verify-stamp")
    assert stamp.get_attribute("data-verified-by") == "t_worker_a"
    assert int(stamp.get_attribute("data-version")) == version
    assert "未变" in stamp.text and "t_worker_a" in stamp.text


def test_a_patrol_with_a_scripted_track_verifies_three_records_and_reports_a_hazard(
    phone, field_base, worker, targets, engine, db_url, photos
):
    driver = phone
    grid = worker["grid"]
    # the walk: five points along a street of grid A, then to the building verified below (the
    # hazard is reported where the worker stands then, at that building, inside the grid)
    with engine.connect() as conn:
        at_building = conn.execute(
            text("""SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p
                    FROM buildings WHERE id = :b) s"""),
            {"b": targets["building"]},
        ).one()
    points = street_track(engine, grid, n=12)[:5] + [tuple(round(c, 8) for c in at_building)]
    assert len(points) == 6 and len(set(points)) == 6
    visited = visited_by_shapely(engine, points, grid)
    assert targets["building"] in visited
    before = _stamps(engine, targets)

    def move_to(lon: float, lat: float) -> None:
        driver.execute_cdp_cmd(
            "Emulation.setGeolocationOverride",
            {"latitude": lat, "longitude": lon, "accuracy": 5},
        )

    # sign in through the form (the geolocation permission is granted for the origin by `phone`)
    move_to(*points[0])
    driver.get(field_base + "/field")
    _wait(driver, f"{_attr('data-ready')} === '1'", "the app to start")
    driver.find_element("id", "login-username").send_keys(worker["username"])
    driver.find_element("id", "login-password").send_keys(PASSWORD)
    _click(driver, "#login-form button[type=submit]")
    _wait(
        driver,
        f"{_attr('data-signed-in')} === '1' && +{_attr('data-records')} > 0 "
        f"&& {_attr('data-refreshing')} === '0'",
        "signed in and the grid downloaded",
    )
    assert driver.find_element("id", "patrol-start").is_displayed()
    _shot(driver, "patrol-before-start")

    # start: the patrol runs on the server, and watchPosition follows the scripted walk
    _click(driver, "#patrol-start")
    _wait(driver, f"+{_attr('data-patrol')} > 0", "the patrol started")
    patrol_id = int(driver.execute_script(f"return {_attr('data-patrol')}"))
    with engine.connect() as conn:
        running = conn.execute(
            text("SELECT username, ended_at FROM patrols WHERE id = :p"), {"p": patrol_id}
        ).one()
    assert running == ("t_worker_a", None)
    _wait(driver, f"{_attr('data-patrol-points')} === '1'", "the first position recorded")
    for i, (lon, lat) in enumerate(points[1:], start=2):
        move_to(lon, lat)
        _wait(driver, f"{_attr('data-patrol-points')} === '{i}'", f"position {i} recorded")
    # the points go in batches of five (and every 15 s): the first batch leaves before the end
    _wait(
        driver,
        f"+{_attr('data-patrol-sent')} >= 5 && "
        f"+{_attr('data-patrol-sent')} + +{_attr('data-patrol-pending')} === 6",
        "the first batch sent",
    )
    assert driver.find_element("id", "patrol-end").is_displayed()
    assert not driver.find_element("id", "patrol-start").is_displayed()
    assert driver.find_element("id", "patrol-note").text == ""
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 360
    _shot(driver, "patrol-running")

    # verify three records on their detail views: building (found by its code), house, resident
    _click(driver, "#tabs [data-tab=search]")
    driver.find_element("id", "search-input").send_keys(targets["code"])
    _click(driver, "#search-form button[type=submit]")
    _wait(driver, "+document.getElementById('search-results').dataset.searched > 0", "hits")
    _click(driver, f"#search-results li[data-type=buildings][data-id='{targets['building']}']")
    _verify_here(driver, "buildings", targets["building"], before["buildings"]["version"])
    _shot(driver, "patrol-verified-building")
    _click(driver, f"#house-list li[data-house='{targets['house']}']")
    _verify_here(driver, "houses", targets["house"], before["houses"]["version"])
    _click(driver, f"#resident-list li[data-resident='{targets['resident']}']")
    _verify_here(driver, "residents", targets["resident"], before["residents"]["version"])
    _shot(driver, "patrol-verified-resident")
    _click(driver, "#sheet-close")
    assert "核实 3" in driver.find_element("id", "patrol-status").text

    # a hazard with a photo, where the worker stands
    picture = png()
    photo_file = photos.parent / f"scene-{patrol_id}.png"
    photo_file.write_bytes(picture)
    _click(driver, "#patrol-hazard")
    _wait(driver, "document.querySelector('#hazard-form')", "the hazard form")
    options = driver.execute_script(
        "return Array.from(document.querySelectorAll('#hazard-form [name=category] option'))"
        ".map(o => o.value)"
    )
    assert options == list(HAZARD_CATEGORIES)
    driver.execute_script(
        "var s = document.querySelector('#hazard-form [name=category]'); s.value = 'fire';"
        "s.dispatchEvent(new Event('change'));"
    )
    driver.find_element("css selector", "#hazard-form [name=description]").send_keys(
        "楼道堆放杂物，消防通道堵塞"
    )
    driver.find_element("id", "hazard-photo").send_keys(str(photo_file))
    _shot(driver, "patrol-hazard-form")
    _click(driver, "#hazard-send")
    _wait(driver, "document.querySelector('#hazard-done[data-hazard]')", "the hazard reported")
    hazard_id = int(driver.find_element("id", "hazard-done").get_attribute("data-hazard"))
    assert "附照片" in driver.find_element("id", "hazard-done").text
    _shot(driver, "patrol-hazard-reported")
    _click(driver, "#sheet-close")

    # end: the last point goes first, then the summary
    _click(driver, "#patrol-end")
    _wait(driver, "document.querySelector('#patrol-summary')", "the patrol summary")
    summary = driver.find_element("id", "patrol-summary")
    assert summary.get_attribute("data-verified") == "3"
    assert summary.get_attribute("data-hazards") == "1"
    assert driver.execute_script(f"return {_attr('data-patrol')}") == ""
    assert driver.execute_script("return document.getElementById('patrol-start').hidden") is False
    _shot(driver, "patrol-summary")

    # --- the database ---------------------------------------------------------------------------
    with engine.connect() as conn:
        patrol = (
            conn.execute(
                text("""SELECT ended_at, buildings, verified, hazards,
                               ST_AsGeoJSON(track, 9, 0) AS track FROM patrols WHERE id = :p"""),
                {"p": patrol_id},
            )
            .mappings()
            .one()
        )
        logged = conn.execute(
            text("""SELECT record_type, record_id, verified_by FROM verifications
                    WHERE patrol_id = :p ORDER BY id"""),
            {"p": patrol_id},
        ).all()
        hazard = (
            conn.execute(
                text("""SELECT status, source, reported_by, grid_code, category, description
                        FROM hazards WHERE id = :h"""),
                {"h": hazard_id},
            )
            .mappings()
            .one()
        )
        evidence = conn.execute(
            text("SELECT evidence FROM hazard_steps WHERE hazard_id = :h ORDER BY id LIMIT 1"),
            {"h": hazard_id},
        ).scalar_one()
    track = [tuple(round(c, 8) for c in xy) for xy in json.loads(patrol["track"])["coordinates"]]
    assert track == points
    assert [tuple(r) for r in logged] == [
        ("buildings", targets["building"], "t_worker_a"),
        ("houses", targets["house"], "t_worker_a"),
        ("residents", targets["resident"], "t_worker_a"),
    ]
    after = _stamps(engine, targets)
    for table in after:
        assert after[table]["version"] == before[table]["version"], table
        assert after[table]["verified_by"] == "t_worker_a", table
        assert after[table]["verified_at"] is not None, table
    assert dict(hazard) == {
        "status": "reported",
        "source": "inspection",
        "reported_by": "t_worker_a",
        "grid_code": grid,
        "category": "fire",
        "description": "楼道堆放杂物，消防通道堵塞",
    }
    photo = next(e for e in evidence if e["type"] == "photo")
    assert photo["media_type"] == "image/png" and photo["file_name"] == photo_file.name
    assert (photos / make_url(db_url).database / photo["stored_as"]).read_bytes() == picture
    assert {"type": "patrol", "patrol_id": patrol_id} in evidence
    assert patrol["ended_at"] is not None
    assert {(v["type"], v["id"]) for v in patrol["verified"]} == {
        ("buildings", targets["building"]),
        ("houses", targets["house"]),
        ("residents", targets["resident"]),
    }
    assert patrol["hazards"] == [hazard_id]
    assert list(patrol["buildings"]) == visited
    assert summary.get_attribute("data-buildings") == str(len(patrol["buildings"]))

    # the app kept nothing of the patrol after its end; no request left 127.0.0.1
    assert driver.execute_script(f"return {_attr('data-patrol-pending')}") == "0"
    _network(driver)
    assert driver.requests_seen and _offsite(driver.requests_seen) == []
    assert any(f"/field/patrols/{patrol_id}/track" in u for u in driver.requests_seen)
    severe = [e for e in driver.get_log("browser") if "Uncaught" in e.get("message", "")]
    assert severe == []
