"""The manage page in a real browser: Debian's Chromium, headless, driven by selenium
through Debian's chromedriver (the Makefile installs both; nothing is downloaded).

A client opens the link from their booking, moves it to a listed time with the picker,
then cancels it; a screenshot of each step is kept in the test's temporary folder.
Viewing and cancelling also work without JavaScript (plain HTML forms).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from tests.api import AROUND_THE_CLOCK, created, iso, tomorrow_at
from tests.booking_helpers import Salon
from tests.manage_helpers import managed, token_of

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser(profile: Path, *, javascript: bool = True) -> webdriver.Chrome:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(
            "Chromium is missing: `make test` installs Debian's chromium and chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1000,1200",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    # Service(executable_path=...) keeps selenium from looking for a driver elsewhere.
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    driver = browser(tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()


def page_path(booking: dict[str, Any]) -> str:
    return f"/manage/{token_of(booking)}"


def _in_thread(function: Any, *args: Any) -> Any:
    return asyncio.to_thread(function, *args)


async def test_a_client_moves_then_cancels_their_booking_in_a_browser(
    salon: Salon, chromium: webdriver.Chrome, tmp_path: Path
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    target = tomorrow_at(14)

    def move_then_cancel() -> tuple[str, str, str]:
        chromium.get(booking["manage_url"])
        assert chromium.find_element(By.TAG_NAME, "h1").text == "Your appointment"
        when = chromium.find_element(By.ID, "when").text
        picker = WebDriverWait(chromium, 15).until(
            expected_conditions.element_to_be_clickable((By.ID, "new-time"))
        )
        # The picker's label is tied to it, for screen readers.
        label = chromium.find_element(By.CSS_SELECTOR, "label[for=new-time]")
        assert "New time" in label.text
        values = [o.get_attribute("value") for o in Select(picker).options]
        wanted = next(v for v in values if v and datetime.fromisoformat(v) == target)
        Select(picker).select_by_value(wanted)
        chromium.save_screenshot(str(tmp_path / "1-picking-a-time.png"))
        chromium.find_element(By.ID, "move-button").click()
        WebDriverWait(chromium, 15).until(
            expected_conditions.text_to_be_present_in_element((By.CLASS_NAME, "notice"), "Done")
        )
        moved_to = chromium.find_element(By.ID, "when").text
        chromium.save_screenshot(str(tmp_path / "2-moved.png"))
        chromium.find_element(By.ID, "reason").send_keys("Something came up")
        chromium.find_element(By.ID, "confirm").click()
        chromium.find_element(By.ID, "cancel-button").click()
        WebDriverWait(chromium, 15).until(
            expected_conditions.presence_of_element_located((By.ID, "cancelled"))
        )
        chromium.save_screenshot(str(tmp_path / "3-cancelled.png"))
        return when, moved_to, chromium.find_element(By.TAG_NAME, "h1").text

    when, moved_to, heading = await _in_thread(move_then_cancel)
    # Shown in the location's time zone (London: 10:00 UTC is 10:00 or 11:00 local).
    local = tomorrow_at(10).astimezone(ZoneInfo("Europe/London"))
    assert f"{local:%H:%M}" in when
    assert f"{target.astimezone(local.tzinfo):%H:%M}" in moved_to
    assert heading == "Your appointment is cancelled"
    shown = await salon.tenant.api.get(
        f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key
    )
    assert shown.body["status"] == "cancelled"
    assert shown.body["starts_at"] == target.isoformat()
    assert shown.body["cancelled_by"] == "client"
    assert shown.body["cancellation_reason"] == "Something came up"
    for step in ("1-picking-a-time", "2-moved", "3-cancelled"):
        assert (tmp_path / f"{step}.png").stat().st_size > 1000


async def test_viewing_and_cancelling_work_without_javascript(salon: Salon, tmp_path: Path) -> None:
    booking = await salon.booking(tomorrow_at(11))

    def cancel_without_script() -> str:
        driver = browser(tmp_path / "profile", javascript=False)
        try:
            driver.get(booking["manage_url"])
            assert driver.find_element(By.ID, "status").text == "confirmed"
            driver.find_element(By.ID, "confirm").click()
            driver.find_element(By.ID, "cancel-button").click()
            WebDriverWait(driver, 15).until(
                expected_conditions.presence_of_element_located((By.ID, "cancelled"))
            )
            driver.save_screenshot(str(tmp_path / "cancelled-without-javascript.png"))
            return str(driver.find_element(By.TAG_NAME, "h1").text)
        finally:
            driver.quit()

    assert await _in_thread(cancel_without_script) == "Your appointment is cancelled"
    assert (await managed(salon.tenant.api, booking)).status == 404


async def test_cancelling_without_ticking_the_confirmation_changes_nothing(
    salon: Salon,
) -> None:
    booking = await salon.booking(tomorrow_at(12))
    page = await salon.tenant.api.call(
        "POST",
        booking["manage_url"].split("/manage/", 1)[1].join(["/manage/", "/cancel"]),
        data=b"cancellation_reason=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert page.status == 422
    assert (await managed(salon.tenant.api, booking)).body["status"] == "confirmed"


async def test_the_page_is_labelled_and_keeps_the_link_to_itself(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(13))
    page = await salon.tenant.api.get(page_path(booking))
    assert page.status == 200
    assert page.content_type == "text/html"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert '<html lang="en">' in page.body
    for control in ("new-time", "reason", "confirm"):
        assert f'<label for="{control}">' in page.body or f'for="{control}"' in page.body
    # Nothing from another site: no CDN, no external script or style.
    assert "http://" not in page.body.replace(booking["manage_url"], "")
    assert "https://" not in page.body


async def test_a_dead_link_shows_a_page_saying_so(salon: Salon) -> None:
    page = await salon.tenant.api.get("/manage/not-a-real-token")
    assert page.status == 404
    assert page.content_type == "text/html"
    assert "no longer works" in page.body


def _luminance(rgb: str) -> float:
    """WCAG relative luminance of a CSS `rgb(r, g, b)` / `rgba(...)` colour."""
    parts = [float(p) for p in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3]]
    linear = [
        c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in parts
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


_COLOURS = """
const page = getComputedStyle(document.body).backgroundColor;
const pick = (selector) => {
  const element = document.querySelector(selector);
  const style = getComputedStyle(element);
  const own = style.backgroundColor;
  const background = own === "rgba(0, 0, 0, 0)" ? page : own;
  return [selector, style.color, background];
};
return ["h1", "dt", "dd", "label", "a", "#move-button", "#cancel-button"].map(pick);
"""
_UNLABELLED = """
return [...document.querySelectorAll("input, select, textarea, button")]
  .filter((c) => c.tagName === "BUTTON" ? !c.textContent.trim() : c.labels.length === 0)
  .map((c) => c.id || c.name);
"""


async def test_the_page_is_labelled_in_focus_order_and_legible(
    salon: Salon, chromium: webdriver.Chrome
) -> None:
    booking = await salon.booking(tomorrow_at(10))

    def inspect() -> tuple[list[Any], list[str], list[str]]:
        chromium.get(booking["manage_url"])
        WebDriverWait(chromium, 15).until(
            expected_conditions.element_to_be_clickable((By.ID, "new-time"))
        )
        colours = chromium.execute_script(_COLOURS)
        unlabelled = chromium.execute_script(_UNLABELLED)
        order = []
        body = chromium.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        for _ in range(6):
            active = chromium.switch_to.active_element
            order.append(active.get_attribute("id") or active.text)
            active.send_keys(Keys.TAB)
        return colours, unlabelled, order

    colours, unlabelled, order = await _in_thread(inspect)
    assert unlabelled == []
    # Reading order: the calendar file, then moving, then cancelling.
    assert order == [
        "Add to my calendar",
        "new-time",
        "move-button",
        "reason",
        "confirm",
        "cancel-button",
    ]
    for selector, foreground, background in colours:
        assert contrast(foreground, background) >= 4.5, (selector, foreground, background)


async def test_times_are_shown_in_the_locations_time_zone(salon: Salon, tmp_path: Path) -> None:
    tenant = salon.tenant
    new_york = await tenant.location(timezone="America/New_York", opening_hours=AROUND_THE_CLOCK)
    service = await tenant.service([new_york["id"]])
    token = await tenant.session_token()
    starts = tomorrow_at(15)
    hold = created(
        await tenant.api.post(
            "/api/v1/bookings/hold",
            token,
            {"service_id": service["id"], "location_id": new_york["id"], "starts_at": iso(starts)},
        )
    )
    booking = created(await salon.book(token, hold["hold_id"]))
    local = starts.astimezone(ZoneInfo("America/New_York"))
    slot = starts + timedelta(hours=1)

    def read() -> tuple[str, str]:
        driver = browser(tmp_path / "profile")
        try:
            driver.get(booking["manage_url"])
            picker = WebDriverWait(driver, 15).until(
                expected_conditions.element_to_be_clickable((By.ID, "new-time"))
            )
            # Availability names times in the location's zone, as its offset shows.
            value = slot.astimezone(local.tzinfo).isoformat()
            option = picker.find_element(By.CSS_SELECTOR, f'option[value="{value}"]')
            return driver.find_element(By.ID, "when").text, option.text
        finally:
            driver.quit()

    when, option = await _in_thread(read)
    assert f"{local:%H:%M}" in when and "America/New York" in when
    # 11:00 in New York (16:00 UTC): the same in the browser's 12- or 24-hour clock.
    assert option.startswith(f"{slot.astimezone(local.tzinfo):%H:%M}")


async def test_a_booking_awaiting_its_deposit_links_to_the_payment(salon: Salon) -> None:
    booking = await salon.booking(tomorrow_at(10), salon.deposit_service_id)
    assert booking["status"] == "pending" and booking["redirect_url"]
    page = await salon.tenant.api.get(page_path(booking))
    assert f'<a href="{booking["redirect_url"]}">Pay the deposit</a>' in page.body
