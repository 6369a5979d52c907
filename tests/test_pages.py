"""Pages for the people who use them: Chinese titles and values, local time with its zone, a
form for the queryables, downloads masked like the JSON, error pages for browsers, and a
Content-Security-Policy on every page."""

from __future__ import annotations

import csv
import io

import pyogrio
from sqlalchemy import text

from tests.conftest import auth


def test_items_pages_speak_chinese_and_offer_a_form(client):
    page = client.get("/collections/facilities/items?f=html&limit=50").text
    assert "类别" in page and "名称" in page  # field titles
    assert any(
        f"{zh} ({code})" in page
        for code, zh in (
            ("kindergarten", "幼儿园"),
            ("hydrant", "消火栓"),
            ("clinic", "社区卫生服务站"),
        )
    )
    assert 'name="kind"' in page and '<option value="kindergarten"' in page
    assert 'id="use-view"' in page and 'name="limit"' in page
    assert "f=csv" in page and "f=gpkg" in page


def test_times_are_shown_in_beijing_time_with_the_zone(client, people):
    admin = people.headers("pages_admin", "admin")
    page = client.get("/catalog?f=html", headers=admin).text
    assert "北京时间 (UTC+08:00)" in page
    raw = client.get("/catalog", headers=admin).json()["layers"][0]["last_loaded"]
    assert raw.endswith("+00:00")  # JSON keeps RFC 3339 in UTC


def test_downloads_are_masked_exactly_like_the_json(client, tokens, tmp_path):
    who = auth(tokens, "planner")
    url = "/collections/organisations/items?limit=20"
    features = client.get(url, headers=who).json()["features"]
    phones = [
        f["properties"]["contact_phone"] for f in features if f["properties"]["contact_phone"]
    ]
    assert phones and all("*" in p for p in phones)
    table = client.get(url + "&f=csv", headers=who)
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(table.content.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    column = next(i for i, h in enumerate(header) if h.endswith("contact_phone"))
    assert [r[column] for r in body if r[column]] == phones
    assert "联系电话 contact_phone" in header
    package = client.get(url + "&f=gpkg", headers=who)
    path = tmp_path / "organisations.gpkg"
    path.write_bytes(package.content)
    frame = pyogrio.read_dataframe(path)
    assert len(frame) == len(features)
    assert [p for p in frame["contact_phone"] if p] == phones


def test_a_browser_is_answered_with_an_error_page(client):
    page = client.get("/collections/nowhere/items", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "找不到该内容" in page.text and "<title>404" in page.text
    machine = client.get("/collections/nowhere/items")
    assert machine.headers["content-type"] == "application/problem+json"


def test_every_page_forbids_inline_script(client, engine):
    with engine.connect() as conn:
        fid = conn.execute(text("SELECT min(id) FROM facilities")).scalar()
    for path in (
        "/?f=html",
        "/collections?f=html",
        "/collections/facilities/items?f=html",
        f"/collections/facilities/items/{fid}?f=html",
        "/catalog?f=html",
        "/docs",
        "/conformance?f=html",
        "/collections/nowhere?f=html",
    ):
        r = client.get(path)
        policy = r.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
        assert "<script>" not in r.text  # only <script src=…> and JSON data blocks


def test_the_landing_page_says_what_the_service_holds(client):
    page = client.get("/?f=html").text
    for words in ("图层 Layers", "资源目录 Catalogue", "专题地图 Maps", "业务工具"):
        assert words in page


def test_a_csv_download_never_carries_a_formula():
    """A department's value that a spreadsheet would run (CSV injection) is written as text."""
    from layers.exports import to_csv

    feature = {"id": 1, "geometry": None, "properties": {"name": '=HYPERLINK("http://x")'}}
    rows = list(csv.reader(io.StringIO(to_csv([feature], ["name"], {}).decode("utf-8-sig"))))
    assert rows[1][1] == '\'=HYPERLINK("http://x")'
