"""The safety map in a real browser, as a safety officer sees it (the token given once in the
address's fragment): hazards by level from our tiles, the risk surface, and a 119 alarm placed by a
click with its five-level response drawn and listed — nothing requested off 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from tests.test_browser import CHROMIUM, DRIVER, _map_pixels, _visit, browser  # noqa: F401

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed"
)


def _attribute(browser, name: str, seconds: float = 20):  # noqa: F811
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = browser.execute_script(
            f"return document.getElementById('map').getAttribute('{name}')"
        )
        if value:
            return value
        time.sleep(0.2)
    return None


def test_the_safety_map_draws_hazards_risk_and_an_alarm_response(browser, served, people):  # noqa: F811
    token = people.token("safety_map_officer", "safety")
    _visit(browser, f"{served}/maps/safety#token={token}", "map-safety-officer")
    assert "token" not in browser.current_url  # the token left the address bar at once
    assert _attribute(browser, "data-safety") == "1"
    assert int(_attribute(browser, "data-risk") or 0) > 0  # every grid scored
    hazards = browser.execute_script(
        "return window.onemapMap.querySourceFeatures('onemap', {sourceLayer: 'hazards'}).length"
    )
    assert hazards > 0
    assert browser.execute_script("return !!window.onemapMap.getLayer('hazards-overdue')")
    browser.find_element("id", "alarm-here").click()
    area = browser.find_element("id", "map")
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(area).click().perform()
    drawn = _attribute(browser, "data-alarm")
    assert drawn and int(drawn) >= 2, browser.find_element("id", "alarm-note").text
    levels = browser.find_elements("css selector", "#alarm-levels li")
    assert len(levels) == 6  # the five levels, then stations, hydrants and residents
    assert "分钟" in levels[-1].text
    time.sleep(1.5)  # the fly to the alarm
    pixels = _map_pixels(browser)
    assert pixels["painted"] > 10_000 and pixels["colours"] >= 4, pixels
    offsite = [
        e
        for e in browser.get_log("performance")
        if '"Network.requestWillBeSent"' in e["message"]
        and '"url":"http' in e["message"]
        and '"url":"http://127.0.0.1' not in e["message"]
    ]
    assert offsite == []
