"""Notebook 14's explorer in a real browser: JupyterLab headless on 127.0.0.1 (a free port, a token,
a temporary root holding a copy of the notebook, temporary config, workspace, settings and runtime
folders, nothing that reaches the network), driven by Debian's chromium through playwright. Run all
cells, read the explorer's text, move the bits slider with the keyboard, and check that the text and
the histogram change; screenshots before and after go to test-artifacts/explorer/.

Without /usr/bin/chromium or the playwright package the test is skipped, unless CI is set: then it
fails. Playwright never downloads a browser here (`playwright install` is not run).
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "14_quantization_explorer.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "explorer"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 120_000  # generous, for a busy machine: a normal run needs a fraction of it
DISABLED_PLUGINS = {
    "@jupyterlab/extensionmanager-extension": True,  # would query PyPI
    "@jupyterlab/apputils-extension:announcements": True,  # would fetch news
}

PANEL = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
KERNEL_IDLE = f"""() => {{
  const panel = {PANEL};
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  const kernel = session && session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}}"""
NOTEBOOK_DONE = f"""() => {{
  const panel = {PANEL};
  if (!panel || !panel.content || !panel.content.model) return false;
  const cells = Array.from(panel.content.model.cells).filter(c => c.type === 'code');
  return cells.length > 0 &&
    cells.every(c => c.executionCount !== null && c.executionState !== 'running');
}}"""
ERRORS = f"""() => Array.from(({PANEL}).content.model.cells).flatMap(c => c.type !== 'code' ? [] :
  c.toJSON().outputs.filter(o => o.output_type === 'error')
    .map(o => `${{o.ename}}: ${{o.evalue}}`))"""
SUMMARY_HAS = (
    "text => { const s = document.querySelector('.qlab-explorer-summary'); return !!s && "
    "s.innerText.includes(text); }"
)


def _needs_browser() -> None:
    """Skip (fail when CI is set) if the browser or the playwright package is missing."""
    reason = None
    if not CHROMIUM.exists():
        reason = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (pip install playwright==1.65.2)"
    if reason and os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser test must run, not skip")
    if reason:
        pytest.skip(reason)


class Clock:
    """Seconds since the test started, at each named step (printed, and shown on failure)."""

    def __init__(self):
        self.start, self.steps = time.monotonic(), {}

    def mark(self, step: str) -> None:
        self.steps[step] = round(time.monotonic() - self.start, 1)

    def __str__(self) -> str:
        return ", ".join(f"{step} {seconds} s" for step, seconds in self.steps.items())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server of our own, in a session of its own, on a temporary home."""

    def __init__(self, home: Path):
        home.mkdir(parents=True)
        self.home, self.token, self.port = home, secrets.token_hex(16), _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        root, config, settings = home / "root", home / "config", home / "settings"
        for folder in (
            root,
            config / "labconfig",
            home / "runtime",
            home / "workspaces",
            home / "data",
            home / "ipython",
            settings / "@jupyterlab" / "notebook-extension",
        ):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": DISABLED_PLUGINS})
        )
        (
            settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        ).write_text(
            json.dumps({"windowingMode": "none"})
        )  # every cell stays in the page, scrolled away or not
        (config / "jupyter_server_config.py").write_text(
            "\n".join(
                [
                    "c.ServerApp.ip = '127.0.0.1'",
                    f"c.ServerApp.port = {self.port}",
                    "c.ServerApp.port_retries = 0",
                    "c.ServerApp.open_browser = False",
                    "c.ServerApp.allow_root = True",  # containers run as root
                    f"c.ServerApp.root_dir = {str(root)!r}",
                    f"c.IdentityProvider.token = {self.token!r}",
                    "c.ServerApp.terminals_enabled = False",
                    "c.ServerApp.jpserver_extensions = "
                    "{'jupyter_lsp': False, 'notebook_shim': False}",  # not needed here
                    "c.LabApp.news_url = None",
                    "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'",
                    "c.LabApp.extension_manager = 'readonly'",
                    "c.LabApp.expose_app_in_browser = True",
                    f"c.LabApp.workspaces_dir = {str(home / 'workspaces')!r}",
                    f"c.LabApp.user_settings_dir = {str(settings)!r}",
                    "",
                ]
            )
        )
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "IPYTHONDIR": str(home / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "QLAB_PROGRESS": "0",
        }
        self.log = (home / "lab.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab"],
            cwd=root,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def call(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 60):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def wait_ready(self, seconds: float = 90) -> bool:
        """True once the server answers; False if it exited because another process took its port.

        Raises:
            RuntimeError: it exited for another reason, or did not answer within `seconds`.
        """
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "address already in use" in self.log_tail().lower():
                    return False
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}")
            with contextlib.suppress(OSError, ValueError):
                self.call("/api/status", timeout=5)
                return True
            time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer on {self.base} within {seconds} s")

    def start_kernel(self) -> None:
        """The notebook's kernel, started now (a session for its path), so that it starts while the
        page loads; the page then connects to it instead of starting one."""
        self.call(
            "/api/sessions",
            "POST",
            {
                "path": NOTEBOOK.name,
                "name": NOTEBOOK.name,
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join((self.home / "lab.log").read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """The server shuts its kernels down, then itself; if it does not within 20 s, its session
        gets SIGTERM."""
        with contextlib.suppress(Exception):
            self.call("/api/shutdown", "POST", timeout=20)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(
                    self.process.pid, signal.SIGTERM
                )  # the session we started: the server, its kernels
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


def _leftovers(before: set) -> list:
    """Processes this test started (pytest's children, at any depth) alive after 10 s; killed."""
    import psutil

    started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    _, alive = psutil.wait_procs(started, timeout=10)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return [p.pid for p in alive]


def _accuracy(text: str) -> str | None:
    found = re.search(r"accuracy \d+\.\d+ % \(float \d+\.\d+ %\)", text)
    return found.group(0) if found else None


def test_the_explorer_runs_and_answers_a_slider_in_the_browser(tmp_path):
    _needs_browser()
    import psutil
    from playwright.sync_api import sync_playwright

    clock, before = Clock(), {p.pid for p in psutil.Process().children(recursive=True)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {name: ARTIFACTS / f"{name}.png" for name in ("before", "after", "failure")}
    for path in shots.values():
        path.unlink(missing_ok=True)
    lab = Lab(tmp_path / "lab")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            clock.mark("browser up")  # while JupyterLab starts
            try:
                for attempt in range(
                    1, 4
                ):  # the free port was free when chosen; another process may take it
                    if lab.wait_ready():
                        break
                    lab.stop()
                    lab = Lab(tmp_path / f"lab{attempt}")
                else:
                    raise RuntimeError("JupyterLab found its port taken three times")
                clock.mark("lab up")
                lab.start_kernel()
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.route(
                    "**/*",
                    lambda route: (
                        route.continue_()
                        if route.request.url.startswith(lab.base)
                        else route.abort()
                    ),
                )  # nothing leaves this machine
                page = context.new_page()
                try:
                    run_and_move_the_slider(page, lab, shots, clock)
                except Exception:
                    with contextlib.suppress(Exception):
                        page.screenshot(path=shots["failure"], full_page=True)
                    raise
            finally:
                browser.close()
    except Exception as error:
        raise AssertionError(
            f"{error}\nsteps: {clock}\nscreenshots in {ARTIFACTS}\n"
            f"JupyterLab's log ends:\n{lab.log_tail()}"
        ) from error
    finally:
        lab.stop()
        clock.mark("lab stopped")
        left = _leftovers(before)
    assert not left, f"processes left behind (killed now): {left}"
    print(f"\nbrowser test: {clock}")


def run_and_move_the_slider(page, lab: Lab, shots: dict, clock: Clock) -> None:
    page.goto(
        f"{lab.base}/lab/tree/{NOTEBOOK.name}?token={lab.token}",
        wait_until="domcontentloaded",
        timeout=WAIT_MS,
    )
    page.wait_for_function(KERNEL_IDLE, timeout=WAIT_MS)
    clock.mark("page and kernel up")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(NOTEBOOK_DONE, timeout=WAIT_MS)
    clock.mark("notebook run")
    errors = page.evaluate(ERRORS)
    assert not errors, f"the notebook raised: {errors}"
    page.wait_for_function(SUMMARY_HAS, arg="accuracy", timeout=WAIT_MS)
    summary, histogram = (
        page.locator(".qlab-explorer-summary"),
        page.locator(".qlab-explorer-histogram"),
    )
    before = summary.inner_text()
    histogram.scroll_into_view_if_needed()
    image_before = histogram.screenshot()
    page.locator(".qlab-explorer").screenshot(path=shots["before"])
    assert _accuracy(before), (
        f"no accuracy in the explorer's text {before!r} (see {shots['before']})"
    )
    assert "int8" in before, (
        f"the explorer should start at 8 bits: {before!r} (see {shots['before']})"
    )

    page.locator(".qlab-explorer-bits .noUi-handle").press(
        "Home"
    )  # the slider's lowest value, 2 bits
    page.wait_for_function(SUMMARY_HAS, arg="int2", timeout=WAIT_MS)
    clock.mark("slider answered")
    after = summary.inner_text()
    image_after = histogram.screenshot()
    page.locator(".qlab-explorer").screenshot(path=shots["after"])
    where = f"(screenshots: {shots['before']}, {shots['after']})"
    assert after != before, f"the explorer's text did not change {where}: {after!r}"
    assert _accuracy(after), (
        f"no accuracy in the explorer's text after the change {where}: {after!r}"
    )
    rounding = [re.search(r"weights: rounding error (\S+),", text) for text in (before, after)]
    assert all(rounding) and rounding[0].group(1) != rounding[1].group(1), (
        f"the weights' rounding error did not change {where}: {before!r} -> {after!r}"
    )
    assert image_after != image_before, f"the histogram did not change {where}"
    print(f"\nexplorer before: {_accuracy(before)}; after: {_accuracy(after)}")
