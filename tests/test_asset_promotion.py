"""Promoting idle assets: the public brochure shows a promoted asset without its internal fields
and nothing else exists for the public; a public view is counted once, a staff one not, and
nothing about the viewer is kept; the statistics equal an independent count from the tables and
are internal; photos are kept on disk and served back, a fake or oversized one refused whole."""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import text

from tests.conftest import TILE_CACHE, auth, settings_for

PROBE_AGENT = "onemap-probe-agent/7.3 (viewer fingerprint)"
PROBE_IP = "203.0.113.77"


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory):
    return tmp_path_factory.mktemp("photos")


def _client(db_url, photo_root, **limits):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from geo.settings import LimitSettings, ServiceSettings

    service = ServiceSettings(
        allowed_hosts="127.0.0.1,localhost,testserver", tile_cache=TILE_CACHE, photos=photo_root
    )
    extra = {"limits": LimitSettings(**limits)} if limits else {}
    return TestClient(create_app(settings_for(db_url, service=service, **extra)))


@pytest.fixture(scope="module")
def web(db_url, photo_root):
    """The app with its photos in a folder of this module's own."""
    with _client(db_url, photo_root) as client:
        yield client


def _asset(engine, status: str, offset: int = 0):
    with engine.connect() as conn:
        return conn.execute(
            text("""SELECT id, code, name, reserve_price_wan, contact_name, contact_phone, notes
                    FROM assets WHERE status = :s AND reserve_price_wan IS NOT NULL
                    AND contact_name IS NOT NULL AND notes IS NOT NULL
                    ORDER BY id OFFSET :o LIMIT 1"""),
            {"s": status, "o": offset},
        ).one()


def _counts(engine, asset_id: int) -> tuple[int, dict[str, int]]:
    """The asset's views (the register's figure and every day's counts) and today's by page."""
    with engine.connect() as conn:
        total = conn.execute(
            text("""SELECT page_views + coalesce((SELECT sum(views) FROM asset_views
                                                  WHERE asset_id = :id), 0)
                    FROM assets WHERE id = :id"""),
            {"id": asset_id},
        ).scalar_one()
        pages = dict(
            conn.execute(
                text("""SELECT page, views FROM asset_views WHERE asset_id = :id
                        AND day = (now() AT TIME ZONE 'Asia/Shanghai')::date"""),
                {"id": asset_id},
            ).all()
        )
    return total, pages


def test_the_public_brochure_shows_no_internal_field(web, engine):
    asset = _asset(engine, "promoted")
    page = web.get(f"/assets/{asset.id}/brochure")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    body = page.text
    assert asset.name in body and "联系 Contact" in body and "@media print" in body
    assert "data-footprint=" in body and "/static/onemap-assets.js" in body
    price = f"{asset.reserve_price_wan}"
    assert not re.search(rf"(?<![\d.,]){re.escape(price)}(?!\d)", body), price
    for secret in (asset.contact_name, asset.contact_phone, asset.notes, "底价", "reserve"):
        assert secret not in body, secret
    assert "<script>" not in body  # no inline script: the CSP would refuse it anyway


@pytest.mark.parametrize("status", ["entered", "negotiating", "withdrawn"])
def test_an_asset_not_on_offer_is_missing_to_the_public_and_there_for_staff(
    web, engine, tokens, status
):
    asset = _asset(engine, status)
    missing = web.get("/assets/99999999/brochure")
    for who in ("anonymous", "worker_a"):
        hidden = web.get(f"/assets/{asset.id}/brochure", headers=auth(tokens, who))
        assert hidden.status_code == 404 == missing.status_code
        assert hidden.json()["type"] == missing.json()["type"] == "/problems/not_found"
        assert asset.name not in hidden.text
        assert web.get(f"/assets/{asset.id}/photos", headers=auth(tokens, who)).status_code == 404
        assert web.post(f"/assets/view/{asset.id}", headers=auth(tokens, who)).status_code == 404
    for who in ("investment", "admin"):
        page = web.get(f"/assets/{asset.id}/brochure", headers=auth(tokens, who))
        assert page.status_code == 200 and asset.name in page.text and "内部预览" in page.text
        assert asset.contact_phone not in page.text and asset.notes not in page.text


def test_each_public_view_counts_once_and_a_staff_view_not(web, engine, tokens):
    asset = _asset(engine, "promoted", offset=1)
    total, pages = _counts(engine, asset.id)
    version = lambda: _version(engine, asset.id)  # noqa: E731
    before_version = version()
    assert web.get(f"/assets/{asset.id}/brochure").status_code == 200
    after = _counts(engine, asset.id)
    assert after == (total + 1, pages | {"brochure": pages.get("brochure", 0) + 1})
    assert web.post(f"/assets/view/{asset.id}").status_code == 204
    after_map = _counts(engine, asset.id)
    assert after_map == (total + 2, after[1] | {"map": pages.get("map", 0) + 1})
    # a grid worker is not investment staff: a public view, counted
    assert web.get(f"/assets/{asset.id}/brochure", headers=auth(tokens, "worker_a")).is_success
    assert _counts(engine, asset.id)[0] == total + 3
    before_staff = _counts(engine, asset.id)
    for who in ("investment", "admin", "planner"):
        assert web.get(f"/assets/{asset.id}/brochure", headers=auth(tokens, who)).is_success
        assert web.post(f"/assets/view/{asset.id}", headers=auth(tokens, who)).status_code == 204
    assert _counts(engine, asset.id) == before_staff
    assert web.post("/assets/view/99999999").status_code == 404
    # the asset's own row is never written by a view: a staff edit read before stays current
    assert web.get(f"/assets/{asset.id}?f=html").is_success
    assert version() == before_version
    assert _counts(engine, asset.id)[1].get("item", 0) == pages.get("item", 0) + 1


def _version(engine, asset_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT version FROM assets WHERE id = :id"), {"id": asset_id}
        ).scalar_one()


def test_a_view_keeps_nothing_about_the_viewer(web, engine):
    from geo.models import Base

    asset = _asset(engine, "promoted", offset=2)
    with engine.connect() as conn:
        columns = conn.execute(
            text("""SELECT column_name FROM information_schema.columns
                    WHERE table_name = 'asset_views' ORDER BY ordinal_position""")
        ).scalars()
        assert list(columns) == ["asset_id", "day", "page", "views"]
    headers = {"User-Agent": PROBE_AGENT, "X-Forwarded-For": PROBE_IP, "X-Real-IP": PROBE_IP}
    total, _ = _counts(engine, asset.id)
    assert web.get(f"/assets/{asset.id}/brochure", headers=headers).status_code == 200
    assert web.post(f"/assets/view/{asset.id}", headers=headers).status_code == 204
    assert _counts(engine, asset.id)[0] == total + 2
    with engine.connect() as conn:  # in no row of any table: the agent, the address, the client
        for table in sorted(Base.metadata.tables):
            found = conn.execute(
                text(f"""SELECT count(*) FROM "{table}" t WHERE t::text LIKE '%onemap-probe%'
                         OR t::text LIKE :ip OR t::text LIKE '%testclient%'"""),
                {"ip": f"%{PROBE_IP}%"},
            ).scalar_one()
            assert found == 0, table


def _tables(engine):
    with engine.connect() as conn:
        assets = pd.read_sql(text("SELECT id, category, status, area_code FROM assets"), conn)
        history = pd.read_sql(
            text("SELECT id, asset_id, status, changed_at FROM asset_status_history"), conn
        )
        areas = pd.read_sql(text("SELECT code, name, level, parent_code FROM admin_areas"), conn)
    return assets, history, areas


def _expected(assets, history, areas, as_of: date | None):
    """The funnel and the rates, counted with pandas from the tables themselves."""
    history = history.copy()
    history["day"] = history.changed_at.dt.tz_convert("Asia/Shanghai").dt.date
    if as_of is not None:
        history = history[history.day <= as_of]
        last = history.sort_values(["changed_at", "id"]).groupby("asset_id").status.last()
        assets = assets.drop(columns="status").merge(
            last.rename("status"), left_on="id", right_index=True
        )
    reached = history.groupby("status").asset_id.nunique()
    funnel = {
        s: int(reached.get(s, 0)) for s in ("entered", "promoted", "negotiating", "revitalised")
    }
    current = assets.status.value_counts().to_dict()
    by_code = areas.set_index("code")
    community = by_code.loc[assets.area_code]
    street_code = community.parent_code.where(community.level == 3, community.index.to_series())
    assets = assets.assign(street=street_code.to_numpy())
    assets["done"] = assets.status == "revitalised"

    def rates(column):
        g = assets.groupby(column).done.agg(["count", "sum"])
        return {
            k: (int(r["count"]), int(r["sum"]), round(r["sum"] / r["count"], 4))
            for k, r in g.iterrows()
        }

    names = by_code.name.to_dict()
    return funnel, current, rates("category"), rates("street"), names, len(assets)


@pytest.mark.parametrize("as_of", [None, date(2025, 6, 30)])
def test_the_statistics_equal_a_count_from_the_tables(web, engine, tokens, as_of):
    query = f"?as_of={as_of}" if as_of else ""
    numbers = web.get(f"/assets/statistics{query}", headers=auth(tokens, "investment"))
    assert numbers.status_code == 200, numbers.text
    s = numbers.json()
    funnel, current, by_category, by_street, names, registered = _expected(*_tables(engine), as_of)
    assert {f["status"]: f["reached"] for f in s["funnel"]} == funnel
    assert [f["status"] for f in s["funnel"]] == [
        "entered",
        "promoted",
        "negotiating",
        "revitalised",
    ]
    assert {c["status"]: c["assets"] for c in s["current"] if c["assets"]} == current
    assert s["totals"]["assets"] == registered
    assert {
        r["key"]: (r["registered"], r["revitalised"], r["rate"]) for r in s["by_category"]
    } == by_category
    assert {
        r["key"]: (r["registered"], r["revitalised"], r["rate"]) for r in s["by_street"]
    } == by_street
    assert all(r["name_zh"] == names[r["key"]] for r in s["by_street"])
    assert len(s["views_per_day"]) == 30
    with engine.connect() as conn:
        views = conn.execute(
            text(
                "SELECT (SELECT sum(page_views) FROM assets) + "
                "(SELECT coalesce(sum(views), 0) FROM asset_views)"
            )
        ).scalar_one()
        in_window = conn.execute(
            text("SELECT coalesce(sum(views), 0) FROM asset_views WHERE day BETWEEN :a AND :b"),
            {"a": s["views_per_day"][0]["day"], "b": s["views_per_day"][-1]["day"]},
        ).scalar_one()
    if as_of is None:  # the totals are today's: earlier days' are not kept
        assert s["totals"]["views"] == views
    assert s["totals"]["recent_views"] == in_window == sum(d["views"] for d in s["views_per_day"])
    views = [a["views"] for a in s["most_viewed"]]
    assert views == sorted(views, reverse=True) and len(views) == 20


def test_the_statistics_are_internal(web, tokens):
    assert web.get("/assets/statistics").status_code == 401
    refused = web.get("/assets/statistics", headers=auth(tokens, "worker_a"))
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert web.get("/assets/statistics", headers=auth(tokens, "planner")).status_code == 200
    page = web.get("/assets/statistics?f=html", headers=auth(tokens, "admin"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "盘活率" in page.text and "状态漏斗" in page.text and 'class="bar' in page.text
    assert "<script>" not in page.text


def _png(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny) PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes([200, 120, 40]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _photo_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM asset_photos")).scalar_one()


def _files(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_photo_is_kept_on_disk_and_served_back(web, engine, tokens, photo_root, db_url):
    from sqlalchemy.engine import make_url

    asset = _asset(engine, "promoted", offset=3)
    image = _png()
    staff = auth(tokens, "investment")
    form = {"caption": "沿街正面 street front"}
    answer = web.post(
        f"/assets/{asset.id}/photos",
        files={"file": ("../../etc/正面.png", image, "application/octet-stream")},
        data=form,
        headers=staff,
    )
    try:
        assert answer.status_code == 201, answer.text
        photo = answer.json()
        assert photo["media_type"] == "image/png" and photo["bytes"] == len(image)
        assert photo["file_name"] == "正面.png" and photo["uploaded_by"] == "t_investment"
        digest = hashlib.sha256(image).hexdigest()
        on_disk = photo_root / make_url(db_url).database / str(asset.id) / f"{digest}.png"
        assert on_disk.read_bytes() == image
        served = web.get(f"/assets/{asset.id}/photos/{photo['id']}")  # the public: promoted
        assert served.status_code == 200 and served.content == image
        assert served.headers["content-type"] == "image/png"
        listed = web.get(f"/assets/{asset.id}/photos").json()
        assert [p["id"] for p in listed] == [photo["id"]]
        assert "uploaded_by" not in listed[0] and listed[0]["caption"] == form["caption"]
        assert (
            f"/assets/{asset.id}/photos/{photo['id']}"
            in web.get(f"/assets/{asset.id}/brochure").text
        )
        again = web.post(
            f"/assets/{asset.id}/photos", files={"file": ("b.png", image)}, headers=staff
        )
        assert again.status_code == 409
        for who, status in (("anonymous", 401), ("planner", 403), ("worker_a", 403)):
            refused = web.post(
                f"/assets/{asset.id}/photos",
                files={"file": ("c.png", image)},
                headers=auth(tokens, who),
            )
            assert refused.status_code == status
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM asset_photos WHERE asset_id = :id"), {"id": asset.id})
        for path in _files(photo_root):
            path.unlink()


def test_a_photo_of_an_asset_not_on_offer_is_staff_only(web, engine, tokens, photo_root):
    asset = _asset(engine, "negotiating")
    staff = auth(tokens, "investment")
    answer = web.post(
        f"/assets/{asset.id}/photos", files={"file": ("n.png", _png(5, 5))}, headers=staff
    )
    try:
        assert answer.status_code == 201, answer.text
        url = f"/assets/{asset.id}/photos/{answer.json()['id']}"
        assert web.get(url).status_code == 404
        assert web.get(url, headers=auth(tokens, "worker_a")).status_code == 404
        assert web.get(url, headers=staff).status_code == 200
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM asset_photos WHERE asset_id = :id"), {"id": asset.id})
        for path in _files(photo_root):
            path.unlink()


@pytest.mark.parametrize(
    "name, content, status, body_limit",
    [
        ("fake.jpg", "这不是照片 just text, renamed .jpg\n".encode() * 10, 415, None),
        ("fake.png", b"GIF89a" + b"\x00" * 64, 415, None),
        ("empty.jpg", b"", 400, None),
        # above the request body limit: refused by api.limits before it is read
        ("big.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * (10 * 1024 * 1024), 413, None),
        # under a larger body limit: refused by the photo's own 10 MB limit
        ("big2.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * (10 * 1024 * 1024), 413, 32 * 1024 * 1024),
    ],
)
def test_a_fake_or_oversized_photo_is_refused_whole(
    db_url, engine, tokens, photo_root, name, content, status, body_limit
):
    asset = _asset(engine, "promoted")
    rows = _photo_rows(engine)
    limits = {"max_body_bytes": body_limit} if body_limit else {}
    with _client(db_url, photo_root, **limits) as client:
        answer = client.post(
            f"/assets/{asset.id}/photos",
            files={"file": (name, content, "image/jpeg")},
            headers=auth(tokens, "investment"),
        )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert _photo_rows(engine) == rows
    assert _files(photo_root) == []
