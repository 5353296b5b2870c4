"""Journal writes from many threads go to the core one at a time (its sshd allows ten
sessions per connection)."""

from __future__ import annotations

import threading
import time

from kato.connect import connections
from kato.journal import JOURNAL_PATH, Journal, entry
from tests.fakes import FakeCluster


def test_twenty_threads_never_hold_two_journal_sessions_at_once() -> None:
    fake = FakeCluster(["node1"])
    busy, most = [0], [0]
    guard = threading.Lock()

    def slow(node: object, argv: tuple[str, ...], stdin: bytes | None) -> None:
        if argv[-1] == JOURNAL_PATH:
            with guard:
                busy[0] += 1
                most[0] = max(most[0], busy[0])
            time.sleep(0.01)
            with guard:
                busy[0] -= 1
        return None  # then the fake appends it

    fake.answers.append(slow)
    with connections(fake.cluster, fake.factory) as conns:
        journal = Journal(conns, "node1")
        threads = [
            threading.Thread(target=journal.write, args=(entry("op", "step", n=i),))
            for i in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert most[0] == 1 and len(fake.journal) == 20
