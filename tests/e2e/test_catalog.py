"""The static catalog in a real headless Chromium (Debian's, installed by .ci/run):
typing in the search box filters the list, and the lineage graph is drawn."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from datamesh.meshctl.main import main as meshctl
from tests.support import ROOT

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (installed by .ci/run)",
)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    out = tmp_path_factory.mktemp("catalog")
    import os

    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        assert meshctl(["catalog", "--out", str(out)]) == 0
    finally:
        os.chdir(cwd)
    options = Options()
    options.binary_location = str(CHROMIUM)
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
        f"--user-data-dir={out / 'profile'}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get((out / "index.html").as_uri())
        yield driver
    finally:
        driver.quit()


def visible(driver: object) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        s.get_attribute("id")
        for s in driver.find_elements(  # type: ignore[attr-defined]
            By.CSS_SELECTOR, "section.product"
        )
        if s.is_displayed()
    ]


def test_search_filters_the_list(page: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = page
    assert len(visible(driver)) == 12
    count = driver.find_element(By.ID, "count")  # type: ignore[attr-defined]
    assert count.text == "12 of 12 products"
    box = driver.find_element(By.ID, "search")  # type: ignore[attr-defined]
    box.send_keys("general-ledger")
    shown = visible(driver)
    assert shown == ["finance-general-ledger"], shown
    assert count.text == "1 of 12 products"
    box.clear()
    box.send_keys("marketing segments")
    assert visible(driver) == ["marketing-customer-segments"]
    box.clear()
    box.send_keys("kpi")  # a tag
    assert set(visible(driver)) == {"sales-revenue-daily", "finance-financial-metrics"}
    box.clear()
    box.send_keys("x")
    box.clear()
    driver.execute_script(  # type: ignore[attr-defined]
        "document.getElementById('search').dispatchEvent(new Event('input'))"
    )
    assert len(visible(driver)) == 12
    shot = ROOT / ".cache" / "catalog.png"
    shot.parent.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    assert shot.stat().st_size > 10_000


def test_lineage_graph_is_rendered(page: object) -> None:
    from selenium.webdriver.common.by import By

    driver = page
    svg = driver.find_element(By.ID, "lineage")  # type: ignore[attr-defined]
    assert svg.size["width"] > 500 and svg.size["height"] > 100
    nodes = driver.find_elements(By.CSS_SELECTOR, "#lineage g.node")  # type: ignore[attr-defined]
    edges = driver.find_elements(By.CSS_SELECTOR, "#lineage path.edge")  # type: ignore[attr-defined]
    assert len(nodes) == 12
    assert len(edges) == 15
    refs = {n.get_attribute("data-ref") for n in nodes}
    assert "product-analytics/customer-360" in refs
