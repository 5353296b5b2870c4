"""Pause points: off without KATO_PAUSE_DIR; with it, kato waits at a point until let go."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kato import pause
from kato.errors import KatoError


def test_without_the_variable_a_point_does_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KATO_PAUSE_DIR", raising=False)
    pause.point("upgrade staging")
    assert list(tmp_path.iterdir()) == []


def test_a_point_says_it_was_reached_and_waits_for_go(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KATO_PAUSE_DIR", str(tmp_path))
    waiter = threading.Thread(target=pause.point, args=("upgrade rolling back: stopping",))
    waiter.start()
    reached = tmp_path / "upgrade-rolling-back-stopping.reached"
    waiter.join(timeout=0.5)
    assert reached.exists() and waiter.is_alive()  # it reached the point and waits there
    (tmp_path / "upgrade-rolling-back-stopping.go").touch()
    waiter.join(timeout=10)
    assert not waiter.is_alive()


def test_a_point_never_let_go_fails_with_the_file_to_create(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KATO_PAUSE_DIR", str(tmp_path))
    monkeypatch.setenv("KATO_PAUSE_TIMEOUT", "0.2")
    with pytest.raises(KatoError, match="not released within 0.2s") as caught:
        pause.point("upgrade staged")
    assert str(tmp_path / "upgrade-staged.go") in (caught.value.hint or "")


def test_off_lets_every_point_pass(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KATO_PAUSE_DIR", str(tmp_path))
    (tmp_path / "off").touch()
    pause.point("upgrade staged")
    assert not (tmp_path / "upgrade-staged.reached").exists()


def test_a_fine_point_stops_only_where_kato_pause_at_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KATO_PAUSE_DIR", str(tmp_path))
    monkeypatch.setenv("KATO_PAUSE_TIMEOUT", "0.2")
    monkeypatch.delenv("KATO_PAUSE_AT", raising=False)
    pause.point("node2 restart router", asked_only=True)  # not asked: passes at once
    monkeypatch.setenv("KATO_PAUSE_AT", "node1-*, node2-restart-*")
    pause.point("node3 restart router", asked_only=True)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KatoError, match="not released"):
        pause.point("node2 restart router", asked_only=True)
    assert (tmp_path / "node2-restart-router.reached").exists()
