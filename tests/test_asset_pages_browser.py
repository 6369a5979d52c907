"""The idle-asset brochure in a real browser (the helpers of test_browser): it loads from this
host only, without console errors, and its footprint map is drawn."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.test_browser import CHROMIUM, DRIVER, _visit, browser  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed"
)


def test_the_brochure_draws_its_footprint_from_this_host_only(browser, served, engine):  # noqa: F811
    with engine.connect() as conn:
        asset = conn.execute(
            text("SELECT id, name FROM assets WHERE status = 'promoted' ORDER BY id LIMIT 1")
        ).one()
    _visit(browser, f"{served}/assets/{asset.id}/brochure", "asset-brochure")
    assert asset.name in browser.title
    drawn = browser.execute_script(
        "var el = document.getElementById('footprint');"
        "return [window.onemapFootprintsDrawn, el.getAttribute('data-drawn'),"
        "        el.querySelectorAll('path.leaflet-interactive').length];"
    )
    assert drawn == [1, "1", 2]  # the outline and its centre marker
    assert "联系 Contact" in browser.find_element("tag name", "body").text


def test_the_asset_list_page_and_compare_draw_their_maps_from_this_host_only(
    browser,  # noqa: F811
    served,
    engine,
):
    from tests.test_browser import _canvas_drawn

    with engine.connect() as conn:
        ids = (
            conn.execute(
                text("SELECT id FROM assets WHERE status = 'promoted' ORDER BY id LIMIT 2")
            )
            .scalars()
            .all()
        )
    _visit(browser, f"{served}/assets?f=html&q=%E5%8E%82%E6%88%BF", "asset-list")
    rows = browser.find_elements("css selector", "#compare-form tbody tr")
    assert rows and all("厂房" in r.text for r in rows)
    assert _canvas_drawn(browser) > 500
    # a polygon drawn by clicks becomes the search's area
    browser.find_element("id", "draw-area").click()
    area = browser.find_element("id", "map")
    from selenium.webdriver.common.action_chains import ActionChains

    for dx, dy in ((-60, -60), (60, -60), (60, 60), (-60, 60)):
        ActionChains(browser).move_to_element_with_offset(area, dx, dy).click().perform()
    browser.find_element("id", "draw-done").click()
    within = browser.find_element("id", "within").get_attribute("value")
    assert within.startswith("POLYGON((") and within.count(",") == 4
    _visit(browser, f"{served}/assets/{ids[0]}?f=html", "asset-surroundings")
    assert "区位分析" in browser.find_element("tag name", "body").text
    assert _canvas_drawn(browser) > 500  # the footprint and its 500 m / 1 km / 3 km rings
    _visit(browser, f"{served}/assets/compare?ids={ids[0]},{ids[1]}&f=html", "asset-compare")
    assert len(browser.find_elements("css selector", "table.compare thead th")) == 3
    assert _canvas_drawn(browser) > 100
