"""The live page in a real browser: headless Chromium driven by Selenium against
Django's live server, with events going through the worker path (store, count,
apply) while the page is open.

Chromium and chromedriver come from the distribution's packages;
scripts/install_browser.sh installs them on first use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from rankings.services import snapshot_take
from tests.conftest import wire
from tests.factories import CategoryFactory, UserFactory
from web import display

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MOVE_DEADLINE_S = 2.0

MakeVideo = Callable[..., Any]
# Events through the worker path (batch_store + batch_process, as the Celery task runs them).
Apply = Callable[[list[str]], Any]


@pytest.fixture(scope="session")
def browser_installed() -> None:
    result = subprocess.run(
        ["sh", str(ROOT / "scripts" / "install_browser.sh")], capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0:
        pytest.fail(f"could not install Chromium:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
def driver(browser_installed: None, django_db_setup: None) -> Iterator[webdriver.Chrome]:
    # After django_db_setup, so the browser (and the server threads serving its kept-alive
    # connections) is gone before the test database is dropped.
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,1100",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    chrome.set_page_load_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(driver: webdriver.Chrome, live_server: Any) -> Iterator[webdriver.Chrome]:
    """The shared browser, its console checked after each test: any SEVERE entry fails it."""
    # The live server answers each kept-alive browser connection in its own thread; with
    # persistent database connections those threads would hold sessions open past the test.
    db_settings = connections.settings["default"]
    max_age = db_settings["CONN_MAX_AGE"]
    db_settings["CONN_MAX_AGE"] = 0
    driver.get_log("browser")  # drop what earlier tests left
    try:
        yield driver
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe
    finally:
        driver.get("about:blank")  # stop the page's polling before the database is flushed
        db_settings["CONN_MAX_AGE"] = max_age


def likes(video_id: int, n: int, **kwargs: Any) -> list[str]:
    return [wire(video_id, "like", **kwargs) for _ in range(n)]


def row_ids(browser: webdriver.Chrome) -> list[int]:
    # One script call reads the whole list at once; element handles could go stale between reads.
    script = "return [...document.querySelectorAll('#board > li.row')].map((li) => Number(li.dataset.id))"
    return [int(i) for i in browser.execute_script(script)]


def wait_for(browser: webdriver.Chrome, condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until true; returns the seconds it took."""
    started = time.monotonic()
    WebDriverWait(browser, timeout, poll_frequency=0.05).until(lambda _: condition(), message=what)
    return time.monotonic() - started


def open_page(browser: webdriver.Chrome, url: str) -> None:
    browser.get(url)
    # The page is live once the first poll has answered and set the clock.
    wait_for(browser, lambda: browser.find_element(By.ID, "live-text").text == "Live", 10, "page never went live")


def screenshot(browser: webdriver.Chrome, name: str) -> Path:
    """The whole page: the window grows to the document's height for the shot, then shrinks back."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    size = browser.get_window_size()
    chrome_h = browser.execute_script("return window.outerHeight - window.innerHeight")
    page_h = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size["width"], max(size["height"], page_h + chrome_h))
    try:
        browser.save_screenshot(str(path))
    finally:
        browser.set_window_size(size["width"], size["height"])
    return path


def resources(browser: webdriver.Chrome) -> list[str]:
    return list(browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"))


def test_a_row_moves_within_two_seconds_of_new_events(
    browser: webdriver.Chrome, live_server: Any, make_video: MakeVideo, apply_events: Apply
) -> None:
    videos = [make_video(title=t) for t in ("Morning run", "Jazz trio live", "Street food tour")]
    for video, n in zip(videos, (30, 20, 10), strict=True):
        apply_events(likes(video.id, n))
    open_page(browser, live_server.url + "/")
    assert row_ids(browser) == [v.id for v in videos]
    last = videos[2]
    row = browser.find_element(By.CSS_SELECTOR, f'#board > li[data-id="{last.id}"]')
    assert row.find_element(By.CSS_SELECTOR, '[data-field="rank"]').text == "3"

    apply_events(likes(last.id, 25))  # 175: first place
    took = wait_for(browser, lambda: row_ids(browser)[0] == last.id, MOVE_DEADLINE_S, "row did not move in time")
    assert took < MOVE_DEADLINE_S
    assert row_ids(browser) == [last.id, videos[0].id, videos[1].id]
    # The same element moved (FLIP animates it, flashing it green), it was not replaced by a new one.
    assert row.find_element(By.CSS_SELECTOR, '[data-field="rank"]').text == "1"
    assert "rose" in (row.get_attribute("class") or "").split()
    below = browser.find_element(By.CSS_SELECTOR, f'#board > li[data-id="{videos[0].id}"]')
    assert "fell" in (below.get_attribute("class") or "").split()
    assert row.find_element(By.CSS_SELECTOR, '[data-field="score"]').text == "175"

    # A video that was not listed enters the list.
    newcomer = make_video(title="Fresh upload")
    apply_events(likes(newcomer.id, 4))
    wait_for(browser, lambda: newcomer.id in row_ids(browser), MOVE_DEADLINE_S, "new video did not appear")
    assert row_ids(browser)[-1] == newcomer.id
    title = browser.find_element(By.CSS_SELECTOR, f'#board > li[data-id="{newcomer.id}"] a.title')
    assert title.get_attribute("textContent") == "Fresh upload"  # .text is empty while it fades in
    assert title.get_attribute("href") == f"{live_server.url}/videos/{newcomer.id}/"
    screenshot(browser, "live-ranking-moved.png")

    # Every request the page made went to this server: it works offline, thumbnails included.
    assert all(url.startswith(live_server.url) for url in resources(browser)), resources(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "#board img") == []


def test_window_and_category_selectors_switch_the_list(
    browser: webdriver.Chrome, live_server: Any, make_video: MakeVideo, apply_events: Apply
) -> None:
    gaming = CategoryFactory(slug="gaming", name="Gaming")
    today = make_video(title="Today's hit")
    game = make_video(title="Boss fight", category=gaming)
    old = make_video(title="Classic from Monday")
    apply_events(likes(today.id, 3) + likes(game.id, 2))
    apply_events(likes(old.id, 9, occurred_at=timezone.now() - timedelta(days=3)))
    open_page(browser, live_server.url + "/")
    assert row_ids(browser) == [today.id, game.id]

    Select(browser.find_element(By.ID, "window-select")).select_by_value("week")
    wait_for(browser, lambda: row_ids(browser) == [old.id, today.id, game.id], 3, "week list not shown")
    assert browser.current_url.endswith("?window=week")

    Select(browser.find_element(By.ID, "category-select")).select_by_value("gaming")
    wait_for(browser, lambda: row_ids(browser) == [game.id], 3, "category list not shown")
    assert browser.current_url.endswith("?window=week&category=gaming")

    # The address keeps the choice: a reload shows the same list, selected.
    open_page(browser, browser.current_url)
    assert row_ids(browser) == [game.id]
    assert Select(browser.find_element(By.ID, "window-select")).first_selected_option.text == "Last 7 days"

    Select(browser.find_element(By.ID, "category-select")).select_by_value("")
    Select(browser.find_element(By.ID, "window-select")).select_by_value("hour")
    wait_for(browser, lambda: row_ids(browser) == [today.id, game.id], 3, "hour list not shown")


def test_video_page_updates_live(
    browser: webdriver.Chrome, live_server: Any, make_video: MakeVideo, apply_events: Apply
) -> None:
    video = make_video(title="Drone over the fjord")
    other = make_video(title="Rival clip")
    apply_events(likes(video.id, 2) + likes(other.id, 3))
    snapshot_take(now=timezone.now() - timedelta(minutes=10))
    snapshot_take(now=timezone.now() - timedelta(minutes=5))
    open_page(browser, f"{live_server.url}/videos/{video.id}/")
    line = browser.find_element(By.CSS_SELECTOR, "#rank-chart .rank-global")
    assert (line.get_attribute("d") or "").startswith("M") and line.is_displayed()
    cell = browser.find_element(
        By.CSS_SELECTOR, '#standings tr[data-window="day"] [data-scope="global"][data-field="rank"]'
    )
    assert cell.text.startswith("#2")
    apply_events(likes(video.id, 5))
    wait_for(browser, lambda: cell.text.startswith("#1"), 4, "standing did not update")
    score = browser.find_element(
        By.CSS_SELECTOR, '#standings tr[data-window="day"] [data-scope="global"][data-field="score"]'
    )
    assert score.text == "35"

    browser.find_element(By.CSS_SELECTOR, '.tab[data-window="all"]').click()
    assert browser.find_element(By.CSS_SELECTOR, 'table.breakdown[data-window="all"]').is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, 'table.breakdown[data-window="day"]').is_displayed()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#activity-chart .chart-bars rect")) == 168

    browser.find_element(By.LINK_TEXT, "← Live ranking").click()
    wait_for(browser, lambda: video.id in row_ids(browser), 5, "back link did not lead to the ranking")


def test_browser_and_server_format_the_same_way(
    browser: webdriver.Chrome, live_server: Any, rankings_ready: None
) -> None:
    """common.js redraws what web/display.py rendered first; both must agree or rows flicker."""
    open_page(browser, live_server.url + "/")
    values = [0.0, 5.0, 1234.0, 1234.56, -3.25, 1_000_000.5, 0.04]
    series = [0.0, 3.0, 12.5, 40.0, 7.0, -2.0]
    moves: list[tuple[int, int | None, bool]] = [
        (3, 5, True),
        (5, 3, True),
        (3, 3, True),
        (3, None, True),
        (3, None, False),
    ]
    titles = ["city night walk", "#1 hit — live", "  ", "Éclair recipe"]
    # Rank lines: a gap, a lone point, ranks past the axis floor, times that are not whole seconds.
    start = 1_767_225_600_123
    ranks = [[(start + 3_600_000 * i + 7 * i, r) for i, r in enumerate([1, 4, None, 12, None, None, 2, 3])], []]
    ranks[1] = [(start + 300_001 * i, r) for i, r in enumerate([None, 7, 7, 6, 1])]
    end = start + 7 * 86_400_000 - 17
    got = browser.execute_async_script(
        """
        const [values, series, moves, titles, ranks, start, end, done] = arguments;
        import(document.querySelector('script[type=module]').src.replace('live.js', 'common.js')).then((m) => done({
          scores: values.map(m.fmtScore),
          spark: m.sparkline(series),
          moves: moves.map(([r, p, s]) => m.movement(r, p, s)),
          initials: titles.map(m.initials),
          hues: [1, 2, 1000].map(m.placeholderHue),
          ranks: m.rankChart(ranks, start, end),
        }));
        """,
        values,
        series,
        moves,
        titles,
        ranks,
        start,
        end,
    )
    chart = display.rank_chart(ranks, start, end)
    assert got["ranks"] == {"paths": chart["paths"], "ticks": chart["ticks"], "worst": chart["worst"]}
    assert len(chart["ticks"]) == 7 and chart["paths"][0].count("M") == 3
    assert got["scores"] == [display.fmt_score(v) for v in values]
    spark = display.sparkline(series)
    assert got["spark"] == {"line": spark["line"], "area": spark["area"], "cx": spark["cx"], "cy": spark["cy"]}
    assert got["moves"] == [vars(display.movement(r, p, has_snapshot=s)) for r, p, s in moves]
    assert got["initials"] == [display.initials(t) for t in titles]
    assert got["hues"] == [display.placeholder_hue(v) for v in (1, 2, 1000)]


# --- the picture for the README -------------------------------------------------------

DEMO = [
    ("Sunrise timelapse over the Alps", "travel", 310),
    ("Lo-fi beats to study to", "music", 280),
    ("Speedrun world record attempt", "gaming", 260),
    ("Street food tour in Bangkok", "travel", 220),
    ("Jazz trio live at the Blue Room", "music", 190),
    ("Building a cabin by hand", "diy", 170),
    ("Cat learns to open doors", "pets", 150),
    ("Indie game devlog #12", "gaming", 130),
    ("Sourdough from scratch", "food", 115),
    ("Night drive through Tokyo", "travel", 100),
    ("Guitar tone shootout", "music", 85),
    ("Tiny apartment makeover", "diy", 70),
]


def test_screenshot_of_a_busy_board(
    browser: webdriver.Chrome, live_server: Any, event_types: None, apply_events: Apply
) -> None:
    """A realistic board (history for the sparklines, a snapshot for the arrows) and a live climb."""
    from scoring.catalog_sync import category_cache_sync, video_cache_sync
    from tests.factories import VideoFactory

    names = {"travel": "Travel", "music": "Music", "gaming": "Gaming", "diy": "DIY", "pets": "Pets", "food": "Food"}
    categories: dict[str, Any] = {slug: CategoryFactory(slug=slug, name=name) for slug, name in names.items()}
    owners = [UserFactory(username=u) for u in ("mira", "jonas", "aiko", "theo", "lena")]
    videos: list[Any] = [
        VideoFactory(
            title=title,
            category=categories[slug],
            owner=owners[i % len(owners)],
            duration_seconds=90 + 97 * i,
            published_at=timezone.now() - timedelta(days=i + 2),
        )
        for i, (title, slug, _) in enumerate(DEMO)
    ]
    category_cache_sync(category_ids=[c.id for c in categories.values()])
    video_cache_sync(video_ids=[v.id for v in videos])
    now = timezone.now()
    raws = []
    for i, (video, (_, _, weight)) in enumerate(zip(videos, DEMO, strict=True)):
        for hour in range(24):
            # Different shapes per video: some rising, some fading, some with a bump.
            shape = [1 + hour, 25 - hour, 8 + 6 * (hour % 6 == i % 6)][i % 3]
            at = now - timedelta(hours=23 - hour, minutes=1)
            for n in range(max(1, shape * weight // 900)):
                # Mostly likes, some views, the odd comment and share: a breakdown worth looking at.
                kind = "share" if n % 17 == 16 else "comment" if n % 7 == 6 else "view" if n % 3 == 2 else "like"
                raws.append(wire(video.id, kind, occurred_at=at, user_id=f"u{hour}-{n}"))
    apply_events(raws)
    # Three videos climb over the last hours, a snapshot after each step (their rank history);
    # the last step comes after the last snapshot (the arrows); then a new video enters.
    climb = {videos[6].id: 40, videos[9].id: 30, videos[3].id: 25}
    steps = 8
    for step in range(steps):
        snapshot_take(now=now - timedelta(minutes=30 * (steps - step)))
        apply_events([raw for vid, n in climb.items() for raw in likes(vid, n // steps + (step < n % steps))])
    newcomer: Any = VideoFactory(title="Drone over the fjord", category=categories["travel"], owner=owners[0])
    video_cache_sync(video_ids=[newcomer.id])
    apply_events(likes(newcomer.id, 30))

    open_page(browser, live_server.url + "/")
    wait_for(browser, lambda: len(row_ids(browser)) == len(DEMO) + 1, 5, "board not filled")
    time.sleep(1.2)  # let the entrance animation settle
    path = screenshot(browser, "live-ranking.png")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(path, ROOT / "docs" / "screenshot-live.png")
    open_page(browser, f"{live_server.url}/videos/{videos[6].id}/")
    screenshot(browser, "video-page.png")
    assert json.loads(browser.find_element(By.ID, "video-config").get_attribute("textContent") or "{}")["videoId"]
