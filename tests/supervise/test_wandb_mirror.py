# SPDX-License-Identifier: MIT
"""The wandb mirror against a fake wandb: order, resume ids, hangs, absence and failures."""

from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dinowm.supervise.wandb_mirror import NOT_INSTALLED, Mirror
from tests.support.process import wait_until

WAIT = {"timeout": 5.0, "interval": 0.005}  # wait_until: 5 s, polled every 5 ms


class FakeRun:
    def __init__(self, wandb: FakeWandb, id: str, mode: str, **_: Any) -> None:
        self.wandb, self.id = wandb, id
        self.url = None if mode == "offline" else f"https://wandb.test/runs/{id}"

    def log(self, metrics: dict, step: int) -> None:
        self.wandb.on_log()
        self.wandb.logged.append((metrics, step))

    def finish(self) -> None:
        self.wandb.finished += 1


class FakeWandb(types.ModuleType):
    """Just enough of wandb: init → FakeRun, Settings; hooks let a test block or raise."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.inits: list[dict[str, Any]] = []
        self.logged: list[tuple[dict, int]] = []
        self.finished = 0
        self.on_init: Callable[[], None] = lambda: None
        self.on_log: Callable[[], None] = lambda: None

    def init(self, **kwargs: Any) -> FakeRun:
        self.inits.append(kwargs)
        self.on_init()
        return FakeRun(self, **kwargs)

    class Settings:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeWandb:
    module = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so fakes that block 'forever' let their worker thread end."""
    event = threading.Event()
    yield event
    event.set()


def make(mode: str = "offline", wandb_id: str | None = None, **kwargs: Any) -> Mirror:
    return Mirror(mode, project="dino_wm", entity="", run_name="franka-1", run_id="r1",
                  wandb_id=wandb_id, config={"lr": 1e-4}, run_dir=Path("outputs/r1"), **kwargs)


def test_disabled_never_imports_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    touched: list[str] = []

    class Tripwire(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            touched.append(name)
            raise AttributeError(name)

    tripwire = Tripwire("wandb")
    monkeypatch.setitem(sys.modules, "wandb", tripwire)
    mirror = make("disabled", wandb_id="keep1234")
    mirror.log({"loss": 1.0}, step=0)
    mirror.finish(timeout_s=0.1)
    assert mirror.status() == {"state": "disabled", "dropped": 0, "queued": 0,
                               "wandb_id": "keep1234", "url": None, "error": None}
    assert sys.modules["wandb"] is tripwire and touched == []
    assert "wandb-mirror" not in {t.name for t in threading.enumerate()}


def test_offline_logs_in_order_and_finishes(fake: FakeWandb) -> None:
    mirror = make("offline")
    for step in range(50):
        mirror.log({"loss": 1.0 / (step + 1)}, step=step)
    mirror.finish(timeout_s=5)
    assert [step for _, step in fake.logged] == list(range(50))
    assert fake.logged[3] == ({"loss": 0.25}, 3)
    (init,) = fake.inits
    assert init["project"] == "dino_wm" and init["entity"] is None and init["name"] == "franka-1"
    assert init["resume"] == "allow" and init["mode"] == "offline"
    assert init["dir"] == str(Path("outputs/r1")) and init["config"]["lr"] == 1e-4
    assert init["settings"].kwargs["console"] == "off"
    status = mirror.status()
    assert status["state"] == "finished" and status["dropped"] == 0 and status["error"] is None
    assert status["wandb_id"] == init["id"] and len(init["id"]) == 8 and status["url"] is None
    assert fake.finished == 1


def test_resume_reuses_the_wandb_id(fake: FakeWandb) -> None:
    first = make("online")
    first.finish(timeout_s=5)
    wandb_id = first.status()["wandb_id"]
    assert first.status()["url"] == f"https://wandb.test/runs/{wandb_id}"
    second = make("online", wandb_id=wandb_id)
    assert second.wandb_id == wandb_id  # known before init, so the supervisor can store it
    second.finish(timeout_s=5)
    assert [init["id"] for init in fake.inits] == [wandb_id, wandb_id]
    assert second.status()["wandb_id"] == wandb_id


def test_settings_fall_back_when_wandb_rejects_keys(fake: FakeWandb) -> None:
    class StrictSettings:
        def __init__(self, **kwargs: Any) -> None:
            if set(kwargs) != {"console"}:
                raise TypeError(f"unexpected {sorted(kwargs)}")
            self.kwargs = kwargs

    fake.Settings = StrictSettings  # type: ignore[misc]
    mirror = make()
    mirror.finish(timeout_s=5)
    assert fake.inits[0]["settings"].kwargs == {"console": "off"}
    assert mirror.status()["state"] == "finished"


def _flood_and_abandon(mirror: Mirror) -> None:
    """10,000 logs each return at once while wandb hangs; finish gives up on time."""
    durations = []
    for step in range(10_000):
        start = time.perf_counter()
        mirror.log({"loss": 0.5}, step=step)
        durations.append(time.perf_counter() - start)
    durations.sort()
    # Every call takes microseconds; the slack above 1 ms is for a rare OS scheduling hiccup.
    assert durations[-10] < 1e-3 and durations[-1] < 0.05 and sum(durations) < 1.0
    start = time.monotonic()
    mirror.finish(timeout_s=0.5)
    assert 0.45 < time.monotonic() - start < 0.6
    start = time.monotonic()
    status = mirror.status()
    assert time.monotonic() - start < 0.01
    assert status["state"].startswith("hung: gave up after 0.5 s")
    mirror.log({"loss": 0.1}, step=10_001)  # after giving up: still harmless


def test_hung_init_never_blocks_the_caller(fake: FakeWandb, release: threading.Event) -> None:
    fake.on_init = release.wait
    mirror = make(timeout_s=0.05, queue_size=100)
    wait_until(lambda: mirror.status()["state"].startswith("hung: wandb.init has not returned"),
               **WAIT)
    assert mirror.wandb_id is not None
    _flood_and_abandon(mirror)
    assert mirror.status()["dropped"] == 10_000 - 100
    assert "wandb.init" in mirror.status()["state"]


def test_hung_log_never_blocks_the_caller(fake: FakeWandb, release: threading.Event) -> None:
    entered = threading.Event()

    def block() -> None:
        entered.set()
        release.wait()

    fake.on_log = block
    mirror = make(timeout_s=0.05, queue_size=100)
    mirror.log({"loss": 1.0}, step=0)
    assert entered.wait(5)
    wait_until(lambda: mirror.status()["state"].startswith("hung: wandb.log has not returned"),
               **WAIT)
    _flood_and_abandon(mirror)
    assert mirror.status()["dropped"] == 10_000 - 100
    assert "wandb.log" in mirror.status()["state"]


def test_wandb_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    mirror = make()
    mirror.log({"loss": 1.0}, step=0)
    mirror.finish(timeout_s=5)
    mirror.log({"loss": 1.0}, step=1)
    mirror.finish(timeout_s=5)
    status = mirror.status()
    assert status["state"] == NOT_INSTALLED and "pip install wandb" in status["state"]
    assert status["queued"] == 0


def test_exception_in_log_becomes_a_status(fake: FakeWandb) -> None:
    def boom() -> None:
        raise ValueError("step must increase")

    fake.on_log = boom
    mirror = make()
    mirror.log({"loss": 1.0}, step=0)
    wait_until(lambda: mirror.status()["state"].startswith("failed"), **WAIT)
    mirror.log({"loss": 1.0}, step=1)  # ignored now, and never raises
    mirror.finish(timeout_s=5)
    status = mirror.status()
    assert status["state"] == "failed: wandb.log raised ValueError: step must increase"
    assert status["error"] == "wandb.log raised ValueError: step must increase"
    assert fake.finished == 1  # the run is still closed so what was written is kept


def test_exception_in_init_becomes_a_status(fake: FakeWandb) -> None:
    def boom() -> None:
        raise RuntimeError("api key missing")

    fake.on_init = boom
    mirror = make("online")
    mirror.log({"loss": 1.0}, step=0)
    mirror.finish(timeout_s=5)
    assert mirror.status()["state"] == "failed: wandb.init raised RuntimeError: api key missing"
    assert mirror.status()["url"] is None and fake.logged == []


def test_unknown_mode_names_the_choices() -> None:
    with pytest.raises(ValueError, match="'onlin' is not one of disabled, offline, online"):
        make("onlin")
