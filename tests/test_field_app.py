"""The grid worker's app (/field) in headless Chromium at a phone's size (360 × 740): sign in, find
a building by its code, drill down to a resident and edit them (the database checked); go offline
(Chromium's network emulation), make five edits while the test changes one of those records on
the server, reload while offline (nothing is lost), come back online: four applied, one conflict,
resolved by keeping the worker's version. IndexedDB holds nothing of the other grid; sign-out
deletes it. No request leaves 127.0.0.1; screenshots go to test-output/screenshots/field-*.png.

The app runs on its own server here, with only houses waiting for review (the default also holds
residents' changes for a reviewer, and this test wants residents' edits applied)."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import running_server
from tests.test_browser import CHROMIUM, DRIVER, SHOTS

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed"
)
PASSWORD = "Wangge-field-2024!"
WAIT = 40


@pytest.fixture(scope="module")
def field_base(db_url):
    with running_server(db_url, workers=1, extra_env={"ONEMAP_REVIEW_TYPES": "houses"}) as (
        base,
        _,
    ):
        yield base


@pytest.fixture(scope="module")
def worker(engine, tokens, grids):
    """Worker A (grid A) with a password; worker B's grid for the leak checks."""
    from geo.policy.passwords import set_password
    from geo.policy.roles import Viewer

    with engine.begin() as conn:
        set_password(conn, "t_worker_a", PASSWORD, by=Viewer("t_admin", "admin"))
    return {"username": "t_worker_a", "grid": grids["A"], "other": grids["B"]}


@pytest.fixture(scope="module")
def phone(tmp_path_factory, field_base):
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
        "--window-size=360,740",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-field')}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "mobileEmulation",
        {
            "deviceMetrics": {"width": 360, "height": 740, "pixelRatio": 2.0, "touch": True},
            "userAgent": "Mozilla/5.0 (Linux; Android 13; Pixel) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
        },
    )
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Browser.grantPermissions", {"origin": field_base, "permissions": ["geolocation"]}
    )
    driver.requests_seen = []
    yield driver
    driver.quit()


# --- helpers ---------------------------------------------------------------------------------


def _wait(driver, script: str, what: str, timeout: float = WAIT):
    """Wait until ``script`` (a JS expression) is truthy; on timeout say what the page showed."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
            lambda d: d.execute_script(f"return {script};")
        )
    except TimeoutException:
        attrs = driver.execute_script(
            "var o = {}; for (const a of document.body.attributes) o[a.name] = a.value; return o;"
        )
        raise AssertionError(f"waiting for {what}: {script}; body {attrs}") from None


def _attr(name: str) -> str:
    return f"document.body.getAttribute('{name}')"


def _shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"field-{name}.png"))


def _network(driver) -> list[str]:
    """The URLs requested since the last call (kept on the driver for the final check)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    driver.requests_seen.extend(urls)
    return urls


def _offsite(urls: list[str]) -> list[str]:
    return [
        u
        for u in urls
        if u.startswith(("http", "ws")) and not u.startswith(("http://127.0.0.1", "ws://127.0.0.1"))
    ]


def _click(driver, css: str) -> None:
    driver.execute_script(
        "var e = document.querySelector(arguments[0]); e.scrollIntoView({block: 'center'}); e.click();",
        css,
    )


def _view(driver, rtype: str, rid: int) -> None:
    _wait(
        driver,
        f"document.querySelector('#sheet-body[data-view=ready][data-type={rtype}][data-id=\"{rid}\"]')",
        f"the {rtype} {rid} view",
    )


def _edit(driver, rtype: str, rid: int, field: str, value: str, *, via_hook: bool = True) -> None:
    """Open a record, press 编辑, change one field, press 保存; wait until the outbox has it."""
    if via_hook:
        driver.execute_script("window.onemapField.open(arguments[0], arguments[1])", rtype, rid)
    _view(driver, rtype, rid)
    before = int(driver.execute_script(f"return {_attr('data-outbox-queued')} || 0"))
    settled_js = " + ".join(
        f"+({_attr('data-outbox-' + s)} || 0)"
        for s in ("applied", "conflict", "pending", "rejected")
    )
    settled = driver.execute_script(f"return {settled_js}")
    _click(driver, "#edit-record")
    _wait(driver, "document.querySelector('#record-form')", "the form")
    box = driver.find_element("css selector", f"#record-form [name={field}]")
    box.clear()
    box.send_keys(value)
    _click(driver, "#save-record")
    _wait(
        driver,
        f"+({_attr('data-outbox-queued')} || 0) > {before} || ({settled_js}) > {settled}",
        f"the edit of {rtype} {rid} in the outbox",
    )


def _row(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).mappings().one()


def _cdp_offline(driver, offline: bool) -> None:
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )


READ_IDB = """
var done = arguments[arguments.length - 1];
var open = indexedDB.open('onemap-field');
open.onerror = function () { done({error: String(open.error)}); };
open.onsuccess = function () {
  var db = open.result, out = {}, names = Array.from(db.objectStoreNames);
  var t = db.transaction(names, 'readonly');
  names.forEach(function (n) { t.objectStore(n).getAll().onsuccess = function (e) { out[n] = e.target.result; }; });
  t.oncomplete = function () { db.close(); done(out); };
};
"""


# --- the tests, in order: one worker's morning ------------------------------------------------


@pytest.fixture(scope="module")
def picks(engine, worker):
    """Records of worker A's grid: a building with a house with residents, two more residents,
    two facilities and an organisation."""
    grid = worker["grid"]
    with engine.connect() as conn:
        first = (
            conn.execute(
                text("""SELECT b.id AS building, b.code, h.id AS house, r.id AS resident
                    FROM buildings b JOIN houses h ON h.building_id = b.id
                    JOIN residents r ON r.house_id = h.id
                    WHERE b.grid_code = :g AND h.grid_code = :g AND r.grid_code = :g
                    ORDER BY b.id, h.id, r.id LIMIT 1"""),
                {"g": grid},
            )
            .mappings()
            .one()
        )
        residents = (
            conn.execute(
                text(
                    "SELECT id FROM residents WHERE grid_code = :g AND id <> :r ORDER BY id LIMIT 2"
                ),
                {"g": grid, "r": first["resident"]},
            )
            .scalars()
            .all()
        )
        facilities = (
            conn.execute(
                text("SELECT id FROM facilities WHERE grid_code = :g ORDER BY id LIMIT 2"),
                {"g": grid},
            )
            .scalars()
            .all()
        )
        organisation = conn.execute(
            text("SELECT id FROM organisations WHERE grid_code = :g ORDER BY id LIMIT 1"),
            {"g": grid},
        ).scalar_one()
    assert len(residents) == 2 and len(facilities) == 2
    return dict(first) | {
        "residents": residents,
        "facilities": facilities,
        "organisation": organisation,
    }


def test_the_shell_is_served_for_offline_use(field_base):
    """The page under the CSP (no inline script), the worker script from the /field scope, the
    manifest; and /field leaves the other /field/… routes theirs."""
    import re

    page = httpx.get(f"{field_base}/field")
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )
    scripts = re.findall(r"<script([^>]*)>", page.text)
    assert all("src=" in a or 'type="application/json"' in a for a in scripts), scripts
    worker_js = httpx.get(f"{field_base}/field/sw.js")
    assert worker_js.headers["content-type"].startswith("application/javascript")
    assert worker_js.headers["service-worker-allowed"] == "/field"
    assert "__SHELL" not in worker_js.text and f"{field_base}/static/field/app.js" in worker_js.text
    manifest = httpx.get(f"{field_base}/field/manifest.webmanifest").json()
    assert manifest["start_url"].endswith("/field") and manifest["lang"] == "zh-CN"
    # this app claims three fixed paths only: /field/patrols…, /field/verify, /field/freshness
    # stay with the routers that own them
    from api.routes.field_app import router

    assert {r.path for r in router.routes} == {
        "/field",
        "/field/sw.js",
        "/field/manifest.webmanifest",
    }


def test_sign_in_find_a_building_and_edit_a_resident(phone, field_base, worker, picks, engine):
    driver = phone
    driver.execute_cdp_cmd(
        "Emulation.setGeolocationOverride",
        {"latitude": 31.65, "longitude": 119.03, "accuracy": 30},
    )
    driver.get(field_base + "/field")
    _wait(driver, f"{_attr('data-ready')} === '1'", "the app to start")
    assert driver.execute_script("return [innerWidth, innerHeight]") == [360, 740]
    assert driver.find_element("id", "login").is_displayed()
    _shot(driver, "sign-in")
    driver.find_element("id", "login-username").send_keys(worker["username"])
    driver.find_element("id", "login-password").send_keys(PASSWORD)
    _click(driver, "#login-form button[type=submit]")
    _wait(driver, f"{_attr('data-signed-in')} === '1'", "signed in")
    _wait(
        driver,
        f"+{_attr('data-records')} > 0 && {_attr('data-refreshing')} === '0'",
        "the grid downloaded",
    )
    _wait(driver, f"{_attr('data-sw')} === 'ready'", "the service worker")
    assert "网格 " + worker["grid"] in driver.find_element("id", "who").text
    assert int(driver.execute_script(f"return {_attr('data-map-features')}")) > 0
    # nothing of the page overflows the phone's width
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 360
    _shot(driver, "map")

    # search by building code, then building → house → resident
    _click(driver, "#tabs [data-tab=search]")
    driver.find_element("id", "search-input").send_keys(picks["code"])
    _click(driver, "#search-form button[type=submit]")
    _wait(driver, "+document.getElementById('search-results').dataset.searched > 0", "hits")
    _shot(driver, "search")
    _click(driver, f"#search-results li[data-type=buildings][data-id='{picks['building']}']")
    _view(driver, "buildings", picks["building"])
    _click(driver, f"#house-list li[data-house='{picks['house']}']")
    _view(driver, "houses", picks["house"])
    _shot(driver, "house")
    _click(driver, f"#resident-list li[data-resident='{picks['resident']}']")
    _view(driver, "residents", picks["resident"])
    before = _row(
        engine,
        "SELECT version, phone, id_number FROM residents WHERE id = :id",
        id=picks["resident"],
    )
    shown = driver.execute_script(
        "return document.getElementById('record-version').dataset.version"
    )
    assert int(shown) == before["version"]
    # the worker's own grid: the API shows the identity number in full (with the purpose stated)
    assert before["id_number"] in driver.find_element("id", "sheet-body").text
    _edit(driver, "residents", picks["resident"], "phone", "13912345678", via_hook=False)
    _wait(
        driver,
        f"document.querySelector('#record-version[data-version=\"{before['version'] + 1}\"]')",
        "the new version shown",
    )
    after = _row(
        engine, "SELECT version, phone FROM residents WHERE id = :id", id=picks["resident"]
    )
    assert after["version"] == before["version"] + 1 and after["phone"] == "13912345678"
    assert "13912345678" in driver.find_element("id", "sheet-body").text
    _shot(driver, "resident-edited")

    # a validation message from the API's rules, in Chinese (made before anything is sent)
    _click(driver, "#edit-record")
    _wait(driver, "document.querySelector('#record-form')", "the form")
    box = driver.find_element("css selector", "#record-form [name=phone]")
    box.clear()
    box.send_keys("12345")
    _click(driver, "#save-record")
    error = _wait(driver, "document.getElementById('form-error').textContent", "the error")
    assert "以13–19开头的11位手机号" in error and "is not an 11-digit mobile number" in error
    _shot(driver, "validation")
    _click(driver, "#sheet-back")
    assert _offsite(_network(driver)) == []


def test_offline_edits_survive_a_reload_and_a_conflict_is_resolved(
    phone, field_base, picks, engine, tokens
):
    driver = phone
    r1, r2 = picks["residents"]
    f1, f2 = picks["facilities"]
    org = picks["organisation"]

    def versions():
        with engine.connect() as conn:
            return {
                "residents": dict(
                    conn.execute(
                        text("SELECT id, version FROM residents WHERE id = ANY(:i)"),
                        {"i": [r1, r2]},
                    ).all()
                ),
                "facilities": dict(
                    conn.execute(
                        text("SELECT id, version FROM facilities WHERE id = ANY(:i)"),
                        {"i": [f1, f2]},
                    ).all()
                ),
                "organisations": dict(
                    conn.execute(
                        text("SELECT id, version FROM organisations WHERE id = :i"), {"i": org}
                    ).all()
                ),
            }

    start = versions()
    _network(driver)
    _cdp_offline(driver, True)
    _wait(driver, f"{_attr('data-online')} === '0'", "the app to know it is offline")
    assert driver.execute_script("return navigator.onLine") is False
    assert "离线" in driver.find_element("id", "net").text

    _edit(driver, "residents", r1, "relation", "之子")
    _edit(driver, "residents", r2, "phone", "13800001111")
    _edit(driver, "facilities", f1, "name", "离线改名设施")
    _edit(driver, "organisations", org, "industry", "离线核实行业")
    _edit(driver, "facilities", f2, "name", "网格员的名称")
    _wait(driver, f"{_attr('data-outbox-queued')} === '5'", "five queued edits")
    assert versions() == start  # nothing reached the server

    # meanwhile, at the office: someone renames facility f2 on the server
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    got = httpx.get(f"{field_base}/records/facilities/{f2}", headers=admin)
    changed = httpx.patch(
        f"{field_base}/records/facilities/{f2}",
        json={"type": "Feature", "properties": {"name": "办公室改的名称"}},
        headers=admin | {"If-Match": got.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    server_version = changed.json()["properties"]["version"]

    # a reload while offline: the shell from the service worker's cache, the queue from IndexedDB
    _click(driver, "#tabs [data-tab=outbox]")
    _shot(driver, "offline-queue")
    driver.refresh()
    _wait(driver, f"{_attr('data-ready')} === '1'", "the app after the offline reload")
    assert driver.execute_script("return navigator.onLine") is False
    _wait(driver, f"{_attr('data-signed-in')} === '1'", "still signed in")
    _wait(driver, f"{_attr('data-outbox-queued')} === '5'", "the queue kept")
    assert driver.execute_script(f"return {_attr('data-online')}") == "0"
    assert versions()["residents"] == start["residents"]
    # the page was served by the service worker, and nothing was sent while offline
    assert driver.execute_script("return !!navigator.serviceWorker.controller") is True
    assert not [u for u in _network(driver) if "/records/" in u]
    _click(driver, "#tabs [data-tab=outbox]")
    _shot(driver, "offline-after-reload")

    # back online: the queue goes out through /records/sync
    _cdp_offline(driver, False)
    _wait(
        driver,
        f"{_attr('data-outbox-queued')} === '0' && {_attr('data-outbox-conflict')} === '1'",
        "the queue settled",
    )
    assert driver.execute_script(f"return {_attr('data-outbox-applied')}") == "5"  # 1 + 4
    now = versions()
    assert now["residents"] == {r1: start["residents"][r1] + 1, r2: start["residents"][r2] + 1}
    assert now["facilities"][f1] == start["facilities"][f1] + 1
    assert now["facilities"][f2] == server_version  # the conflict changed nothing
    assert now["organisations"][org] == start["organisations"][org] + 1
    assert _row(engine, "SELECT relation FROM residents WHERE id = :i", i=r1)["relation"] == "之子"
    assert _row(engine, "SELECT phone FROM residents WHERE id = :i", i=r2)["phone"] == "13800001111"
    assert _row(engine, "SELECT name FROM facilities WHERE id = :i", i=f1)["name"] == "离线改名设施"
    assert (
        _row(engine, "SELECT industry FROM organisations WHERE id = :i", i=org)["industry"]
        == "离线核实行业"
    )
    assert (
        _row(engine, "SELECT name FROM facilities WHERE id = :i", i=f2)["name"] == "办公室改的名称"
    )
    conflict = driver.find_element("css selector", "#outbox li[data-status=conflict]")
    assert conflict.get_attribute("data-record") == f"facilities:{f2}"
    _shot(driver, "synced-with-conflict")

    # the conflict, field by field: mine beside the server's; keep mine
    _click(driver, "#outbox li[data-status=conflict] button")
    _wait(driver, "document.querySelector('#conflict-diff tr[data-field=name]')", "the diff")
    row = driver.find_element("css selector", "#conflict-diff tr[data-field=name]")
    assert "网格员的名称" in row.find_element("css selector", "td.mine").text
    assert "办公室改的名称" in row.find_element("css selector", "td.server").text
    _shot(driver, "conflict")
    _click(driver, "#keep-mine")
    _wait(
        driver,
        f"{_attr('data-outbox-conflict')} === '0' && {_attr('data-outbox-applied')} === '6'",
        "the conflict resolved",
    )
    kept = _row(engine, "SELECT name, version FROM facilities WHERE id = :i", i=f2)
    assert kept["name"] == "网格员的名称" and kept["version"] == server_version + 1
    _click(driver, "#tabs [data-tab=outbox]")
    _shot(driver, "resolved")
    assert _offsite(_network(driver)) == []


def test_a_house_edit_waits_for_review_and_is_listed(phone, picks, engine):
    driver = phone
    _edit(driver, "houses", picks["house"], "room_number", "A909")
    _wait(driver, f"{_attr('data-outbox-pending')} === '1'", "the edit pending review")
    with engine.connect() as conn:
        waiting = conn.execute(
            text("""SELECT count(*) FROM record_reviews WHERE record_type = 'houses'
                    AND record_id = :h AND status = 'pending'"""),
            {"h": picks["house"]},
        ).scalar_one()
    assert waiting == 1
    _click(driver, "#tabs [data-tab=reviews]")
    _wait(driver, f"+{_attr('data-reviews')} >= 1", "the review list")
    assert "待审核" in driver.find_element("id", "reviews").text
    _shot(driver, "reviews")


def test_worker_a_device_holds_nothing_of_worker_b(phone, engine, worker):
    """Everything IndexedDB holds is of worker A's grid; none of worker B's people, raw or not."""
    stored = phone.execute_async_script(READ_IDB)
    assert "error" not in stored, stored
    records = stored["records"]
    assert records and {r["properties"]["grid_code"] for r in records} == {worker["grid"]}
    with engine.connect() as conn:
        theirs = conn.execute(
            text("SELECT id, id_number, phone FROM residents WHERE grid_code = :g"),
            {"g": worker["other"]},
        ).all()
        mine = conn.execute(
            text("SELECT count(*) FROM residents WHERE grid_code = :g"), {"g": worker["grid"]}
        ).scalar_one()
    assert theirs
    everything = json.dumps(stored, ensure_ascii=False)
    for person in theirs:
        assert person.id_number not in everything
        assert not person.phone or person.phone not in everything
    kept = {r["id"] for r in records if r["type"] == "residents"}
    assert kept.isdisjoint({p.id for p in theirs}) and len(kept) == mine
    # the token for the session is there until sign-out; no API answer is in the Cache Storage
    cached = phone.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "caches.keys().then(ns => Promise.all(ns.map(n => caches.open(n).then(c => c.keys())))"
        ".then(ks => done([].concat(...ks).map(r => r.url))));"
    )
    assert cached and not [u for u in cached if "/records" in u or "/auth" in u], cached


def test_sign_out_deletes_the_grid_from_the_device(phone, field_base):
    driver = phone
    _click(driver, "#sign-out")
    _wait(driver, f"{_attr('data-signed-in')} === '0'", "signed out")
    names = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "indexedDB.databases().then(ds => done(ds.map(d => d.name)));"
    )
    assert "onemap-field" not in names
    caches = driver.execute_async_script(
        "var done = arguments[arguments.length - 1]; caches.keys().then(done);"
    )
    assert all(n.startswith("onemap-field-shell-") for n in caches), caches
    _shot(driver, "signed-out")
    _network(driver)
    assert _offsite(driver.requests_seen) == []
    assert any("/records/sync" in u for u in driver.requests_seen)
    severe = [e for e in driver.get_log("browser") if "Uncaught" in e.get("message", "")]
    assert severe == []
