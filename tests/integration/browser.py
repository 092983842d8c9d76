"""A real headless Chromium (Debian's `chromium` and `chromium-driver`, driven by Selenium),
logged in to the Airflow UI the way a person is: through its login form.

Pages are read as a person sees them: what the page shows, its console, and a screenshot
kept under the state folder (`<state>/test-artifacts/screenshots/`).
"""
from __future__ import annotations

import os
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 30


def screenshots_dir() -> Path:
    folder = Path(os.environ["LOOPLINE_STATE_DIR"]) / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Browser:
    """One headless Chromium session against the Airflow API server."""

    def __init__(self) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1100",
                         "--disable-gpu", "--no-first-run"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # The driver Debian installed, named explicitly: Selenium must not fetch one.
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        self.base = os.environ["AIRFLOW__API__BASE_URL"].rstrip("/")

    def open(self, path: str) -> None:
        self.driver.get(f"{self.base}{path}")
        WebDriverWait(self.driver, WAIT_S).until(lambda d: d.execute_script("return document.readyState") == "complete")

    def log_in(self, username: str, password: str, then: str) -> None:
        """Open `then`; on the login page it leads to, log in with the form."""
        self.open(then)
        self.driver.find_element(By.NAME, "username").send_keys(username)
        password_field = self.driver.find_element(By.NAME, "password")
        password_field.send_keys(password)
        password_field.submit()
        WebDriverWait(self.driver, WAIT_S).until(lambda d: "/auth/login" not in d.current_url)
        self.console_errors()  # drained: FAB's own login page logs a jQuery error ("reading 'tz'")
        self.open(then)

    def wait_for(self, css: str) -> None:
        WebDriverWait(self.driver, WAIT_S).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))

    def draw_every_chart(self) -> None:
        """Scroll each chart of the page into view and wait until it is drawn (charts below the
        first screen are drawn as they come into view)."""
        for element in self.driver.find_elements(By.CSS_SELECTOR, ".chart"):
            self.driver.execute_script("arguments[0].scrollIntoView()", element)
            WebDriverWait(self.driver, WAIT_S).until(lambda _: element.get_attribute("data-drawn") == "true")

    def show_prometheus(self, promql: str) -> None:
        """Prometheus's own UI with `promql` in its console tab, logged in by a header (never a
        password in a URL, where a log line could show it)."""
        import base64
        import urllib.parse

        login = base64.b64encode(f"loopline:{os.environ['LOOPLINE_PROMETHEUS_PASSWORD']}".encode()).decode()
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {login}"}})
        self.driver.get(f"{os.environ['LOOPLINE_PROMETHEUS_URL']}/graph?g0.expr={urllib.parse.quote(promql)}&g0.tab=1")
        WebDriverWait(self.driver, WAIT_S).until(lambda d: d.find_elements(By.XPATH, "//td[contains(., 'loopline_')]"))
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        self.console_errors()  # drained: Debian's Prometheus UI logs a popper.js syntax error of its own

    def console_errors(self) -> list[dict]:
        """What the page wrote to the console at level SEVERE since the last call."""
        return [entry for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def screenshot(self, name: str) -> Path:
        """The whole page (the window made as tall as the page), every chart drawn."""
        path = screenshots_dir() / f"{name}.png"
        self.draw_every_chart()
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1440, max(1100, min(height + 200, 8000)))
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1440, 1100)
        return path

    def texts(self, css: str) -> list[str]:
        return [element.text for element in self.driver.find_elements(By.CSS_SELECTOR, css)]

    def script(self, source: str, *arguments):
        return self.driver.execute_script(source, *arguments)

    def close(self) -> None:
        self.driver.quit()
