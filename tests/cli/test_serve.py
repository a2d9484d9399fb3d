# SPDX-License-Identifier: MIT
"""`dinowm serve`: the real command serves dinowm-tui to a real headless browser (Debian's
chromium through selenium), refuses a host other machines reach and a port in use in one line.

Without chromium, chromium-driver or selenium the browser test skips saying how to install
them, unless DINOWM_REQUIRE_BROWSER=1 (set by .ci/run, which installs them), where it fails.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dinowm.cli.serve import addresses, is_loopback
from dinowm.supervise.procinfo import descendants
from tests.support.process import unavailable, wait_until
from tests.support.tui_seed import seed_project

INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"

# Runs before the page's scripts: textual-serve's page keeps its xterm.js terminal in a
# closure (`this.terminal = new Terminal(...)`); an inherited setter hands it to the test,
# which then reads the very screen buffer the page draws.
KEEP_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {configurable: true, set(value) {
  Object.defineProperty(this, "terminal", {value, writable: true, configurable: true});
  if (value && value.buffer) { window.dinowmTerminal = value; }
}});
"""
SCREEN_TEXT = """
const t = window.dinowmTerminal;
if (!t) { return ""; }
const b = t.buffer.active, rows = [];
for (let i = 0; i < t.rows; i++) {
  const line = b.getLine(b.viewportY + i);
  rows.push(line ? line.translateToString(true) : "");
}
return rows.join("\\n");
"""


def browser_missing() -> str | None:
    """What is missing for the browser test, or None."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    return ", ".join(missing) or None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless chromium under chromedriver in a session of its own, killed whole at the end."""
    missing = browser_missing()
    if missing:
        unavailable(f"no {missing}: {INSTALL}", "DINOWM_REQUIRE_BROWSER")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1100,700", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    service = Service(shutil.which("chromedriver"), log_output=str(tmp_path / "driver.log"),
                      popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            with_group_killed(service.process)


def with_group_killed(proc: subprocess.Popen | None) -> None:
    """SIGKILL proc's whole process group (it leads one) and reap proc."""
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start the real `dinowm serve ...` in its own session; its group is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "dinowm", "serve", *args], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with_group_killed(proc)
        proc.stdout.close()
        proc.stderr.close()


def first_line(proc: subprocess.Popen, timeout: float = 20.0) -> str:
    """The first line proc prints, read with a deadline."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), f"dinowm serve printed nothing in {timeout} s"
    return proc.stdout.readline()


def test_a_browser_shows_the_live_app_and_ctrl_c_ends_it(tmp_path: Path, browser, serve) -> None:
    config = seed_project(tmp_path)
    proc = serve("--port", "0", str(config))
    line = first_line(proc)
    assert line.startswith("dinowm serve: open http://127.0.0.1:"), line
    url = line.split()[3]
    driver = browser
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": KEEP_TERMINAL})
    driver.get(url)

    def screen() -> str:
        return driver.execute_script(SCREEN_TEXT)

    try:
        wait_until(lambda: "baseline" in screen() and "lr-high" in screen(), timeout=30)
        text = screen()
        assert "✔ completed" in text and "▶ running" in text and "4 runs" in text, text
        shoot(driver, tmp_path / "serve-runs.png")
        assert "Clear filter" not in text  # only the keys panel names it at this width
        driver.find_element("css selector", ".xterm-helper-textarea").send_keys("?")
        wait_until(lambda: "esc Clear filter" in screen() and "Focus Next" in screen(),
                   timeout=15)
        shoot(driver, tmp_path / "serve-keys.png")
    finally:
        shoot(driver, tmp_path / "serve-last.png")
    apps = [row["pid"] for row in descendants(proc.pid) if row["ppid"] == proc.pid]
    assert len(apps) == 1, apps  # one tab, one app process
    proc.send_signal(signal.SIGINT)  # Ctrl-C, to dinowm serve alone: it ends its app itself
    assert proc.wait(timeout=15) == 0, proc.stderr.read()
    assert not any(Path(f"/proc/{pid}").exists() for pid in apps)


def shoot(driver: object, path: Path) -> None:
    """A screenshot in the test's folder, copied to $DINOWM_ARTIFACTS when that is set."""
    driver.save_screenshot(str(path))
    if os.environ.get("DINOWM_ARTIFACTS"):
        target = Path(os.environ["DINOWM_ARTIFACTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / path.name)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_host_other_machines_reach_is_refused(project_dir: Path, cli, host: str) -> None:
    with socket.socket() as probe:  # a port free now; nothing may listen on it afterwards
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = cli("serve", "--host", host, "--port", str(port), cwd=project_dir, timeout=30)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1, out.stderr
    assert f"--host {host}" in out.stderr and "--allow-remote" in out.stderr
    assert f"ssh -L {port}:localhost:{port} user@workstation" in out.stderr
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_port_in_use_is_one_line(project_dir: Path, cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = cli("serve", "--port", str(port), cwd=project_dir, timeout=30)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert f"Port {port} on 127.0.0.1 is in use" in out.stderr and "--port" in out.stderr


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("10.0.0.1", False)])
def test_only_loopback_counts_as_this_machine(host: str, local: bool) -> None:
    assert is_loopback(addresses(host, 8000)) is local


def test_pages_of_other_sites_and_other_names_are_refused() -> None:
    pytest.importorskip("textual_serve")
    from dinowm.cli.webserver import refusal

    assert refusal("127.0.0.1:8000", None, local_only=True) is None
    assert refusal("localhost:9000", "http://localhost:9000", local_only=True) is None
    assert refusal("[::1]:8000", None, local_only=True) is None
    assert "Origin" in refusal("127.0.0.1:8000", "http://evil.example", local_only=True)
    assert "localhost only" in refusal("evil.example:8000", None, local_only=True)
    assert refusal("workstation:8000", "http://workstation:8000", local_only=False) is None
    assert "Origin" in refusal("workstation:8000", "http://evil.example", local_only=False)

