"""SIGHUP re-reads proxy.yaml: reloadable keys apply at once, all-or-nothing; a broken file or
a restart-only key leaves the running settings untouched and says why (issue #20)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from structlog.testing import capture_logs

from proxy.config_loader import load_settings
from proxy.config_reload import reload_config
from proxy.core.configdiff import plan_reload
from proxy.rulebook import Rulebook
from proxy.web.app import build_app
from proxy.web.keys import RELAY, SETTINGS
from tests.web.conftest import REPO, Clock

BASE = """consortium_name: Before
data_dir: {data}
rules_dir: {rules}
listen:
  host: 127.0.0.1
  port: {port}
libraries:
  - code: MAIN
    name: Main Library
    prefix: "2123"
  - code: WEST
    name: West Library
    prefix: "2987"
throttle:
  card_attempts: {card_attempts}
"""


def write(
    config: Path, tmp: Path, *, port: int = 8080, card_attempts: int = 5, extra: str = ""
) -> None:
    """Write proxy.yaml with the given values."""
    config.write_text(
        BASE.format(
            data=tmp / "data", rules=REPO / "vendor_rules", port=port, card_attempts=card_attempts
        )
        + extra
    )


async def started(config: Path) -> web.AppRunner:
    """The app over ``config``, started."""
    settings = load_settings(config, {})
    book = Rulebook.open(settings.rules_dir, frozenset(lib.code for lib in settings.libraries))
    runner = web.AppRunner(await build_app(settings, book, clock=Clock()))
    await runner.setup()
    return runner


async def test_reloadable_keys_apply_at_once(tmp_path: Path) -> None:
    """A new throttle and name reach the running app (and the relay's bundle)."""
    config = tmp_path / "proxy.yaml"
    write(config, tmp_path)
    runner = await started(config)
    try:
        write(config, tmp_path, card_attempts=9)
        config.write_text(config.read_text().replace("Before", "After"))
        with capture_logs() as logs:
            plan = await reload_config(runner.app, config, {})
        assert plan is not None and set(plan.changed) == {"throttle", "consortium_name"}
        assert runner.app[SETTINGS].throttle.card_attempts == 9
        assert runner.app[RELAY].settings.consortium_name == "After"
        assert any(e["event"] == "config_reloaded" for e in logs)
    finally:
        await runner.cleanup()


async def test_a_restart_only_key_refuses_the_whole_file(tmp_path: Path) -> None:
    """A new port with a new throttle: neither applies, and the log names the port's key."""
    config = tmp_path / "proxy.yaml"
    write(config, tmp_path)
    runner = await started(config)
    try:
        write(config, tmp_path, port=8090, card_attempts=9)
        with capture_logs() as logs:
            plan = await reload_config(runner.app, config, {})
        assert plan is not None and plan.restart_needed == ("listen",)
        assert runner.app[SETTINGS].throttle.card_attempts == 5
        refused = [e for e in logs if e["event"] == "config_reload_needs_restart"]
        assert refused and refused[0]["keys"] == ["listen"]
    finally:
        await runner.cleanup()


async def test_a_broken_file_keeps_the_old_settings(tmp_path: Path) -> None:
    """A typo is refused with file, line and key; the running settings stay."""
    config = tmp_path / "proxy.yaml"
    write(config, tmp_path)
    runner = await started(config)
    try:
        old = runner.app[SETTINGS]
        write(config, tmp_path, extra="throttle:\n  card_attempts: many\n")
        config.write_text(config.read_text().replace("throttle:\n  card_attempts: 5\n", ""))
        with capture_logs() as logs:
            assert await reload_config(runner.app, config, {}) is None
        assert runner.app[SETTINGS] is old
        problems = next(e for e in logs if e["event"] == "config_reload_refused")["problems"]
        assert any(str(config) in p and "throttle.card_attempts" in p for p in problems)
    finally:
        await runner.cleanup()


def test_plan_splits_changes(tmp_path: Path) -> None:
    """The pure comparison puts each changed key on its side."""
    config = tmp_path / "proxy.yaml"
    write(config, tmp_path)
    old = load_settings(config, {})
    write(config, tmp_path, port=9000, card_attempts=7)
    plan = plan_reload(old, load_settings(config, {}))
    assert plan.changed == ("throttle",) and plan.restart_needed == ("listen",)
    assert not plan.possible
