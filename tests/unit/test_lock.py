"""kato/lock.py's fence on a fake core node: a lock still ours costs a plain read of the lock
file; a broken one takes the full check, which marks the break seen and stops the holder."""

from __future__ import annotations

import pytest

from kato.engine.session import session
from kato.errors import LockLost
from kato.lock import LOCK_PATH
from tests.fakes import FakeCluster


def checks(fake: FakeCluster) -> list[str]:
    """Each lock check the core node saw: a plain read, or the lock program's operation."""
    return [
        "read" if argv[0] == "cat" else argv[4] for argv in fake.ran("node1") if LOCK_PATH in argv
    ]


def test_a_lock_still_ours_is_checked_by_reading_it() -> None:
    fake = FakeCluster(["node1", "node2"])
    with session(fake.cluster, ["kato", "change"], factory=fake.factory) as s:
        s.begin()
        held = s.op.lock
        assert held is not None
        held.fence()
        assert checks(fake) == ["acquire", "read"]


def test_a_broken_lock_takes_the_full_check_and_stops_its_holder() -> None:
    fake = FakeCluster(["node1", "node2"])
    with session(fake.cluster, ["kato", "change"], factory=fake.factory) as s:
        s.begin()
        assert fake.lock is not None
        fake.lock["broken"] = {"by": "someone", "at": 1.0}
        with pytest.raises(LockLost):
            s.transport("node2").run(("true",))
        assert checks(fake) == ["acquire", "read", "fence"]
        broken = fake.lock["broken"]
        assert isinstance(broken, dict) and broken["seen"]  # another operation may take it now
    assert ("node2", ("true",)) not in fake.calls
