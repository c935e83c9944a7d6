"""The web page at / in headless Chromium (Debian's), clicking through a real synthesis."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No background traffic: this machine has no network beyond loopback.
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def test_page_synthesizes_plays_and_offers_download(server, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelectorAll('#voice option').length > 0")
    assert page.locator("#voice option").first.get_attribute("value") == "baker"
    emotions = page.locator("#emotion option").all_inner_texts()
    assert {"neutral", "happy", "sad", "angry", "surprised"} <= set(emotions)

    page.fill("#text", "今天是2024年3月5日，气温25℃。")
    page.select_option("#emotion", "happy")
    page.fill("#speed", "1.2")
    page.click("#speak")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=60_000)
    duration = page.evaluate(
        """() => new Promise((resolve) => {
            const a = document.getElementById('player');
            if (a.readyState >= 1) resolve(a.duration); else a.onloadedmetadata = () => resolve(a.duration);
        })"""
    )
    assert duration > 1.5
    link = page.locator("#download")
    assert link.is_visible()
    assert link.get_attribute("href").startswith("blob:")
    assert link.get_attribute("download") == "speech.wav"


def test_page_shows_server_errors(server, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelectorAll('#voice option').length > 0")
    page.fill("#text", "   ")
    page.click("#speak")
    page.wait_for_function("document.getElementById('status').className === 'error'", timeout=30_000)
    assert "empty" in page.locator("#status").inner_text()
