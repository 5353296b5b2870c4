"""Export's assembly of node-compressed members into one archive file. The nodes stream their
members at the same time (at most --parallel of them); the member next in line goes straight
into the archive, the others wait in spool files beside it (0600, removed at the end) until
their turn, copied in as they grow. Memory stays constant: a direct member passes through a
short queue of chunks."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kato.data.archive import ArchiveWriteFailed, ArchiveWriter

QUEUE_CHUNKS = 8  # chunks of about GATHER bytes waiting between a node's stream and the archive
GATHER = 1 << 20  # a node's SSH packets (32 KiB each) are passed on in pieces of this size
COPY = 1 << 22
WAIT = 1.0  # seconds between looks at the abort flag while waiting


class Aborted(Exception):
    """The export stopped (another member failed): a node's stream ends here."""


@dataclass(eq=False)
class Slot:
    """One member's way into the archive."""

    index: int
    spool_path: Path
    mode: str | None = None  # "direct" into the archive, or "spool" (decided at its 1st byte)
    queue: queue.Queue[bytes | None] = field(default_factory=lambda: queue.Queue(QUEUE_CHUNKS))
    spool_fd: int | None = None
    gathered: list[bytes] = field(default_factory=list)  # packets not yet passed on
    gathered_size: int = 0
    written: int = 0
    done: bool = False
    error: BaseException | None = None


class Assembly:
    """The slots of one export, filled by the nodes' threads, emptied in order by one
    thread (the caller of `assemble`) that alone writes the archive."""

    def __init__(self, count: int, spool_prefix: Path) -> None:
        self.cond = threading.Condition()
        self.current = -1
        self.aborted = False
        self.slots = [Slot(i, Path(f"{spool_prefix}.{i}")) for i in range(count)]

    # --- the nodes' side ---------------------------------------------------------------------

    def sink(self, index: int) -> SlotSink:
        return SlotSink(self, self.slots[index])

    def _decide(self, slot: Slot) -> None:
        with self.cond:
            if self.aborted:
                raise Aborted
            if slot.mode is None:
                if self.current == slot.index:
                    slot.mode = "direct"
                else:
                    slot.spool_fd = os.open(
                        slot.spool_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600
                    )
                    slot.mode = "spool"
                self.cond.notify_all()

    def _put(self, slot: Slot, item: bytes | None) -> None:
        while True:
            try:
                slot.queue.put(item, timeout=WAIT)
                return
            except queue.Full:
                if self.aborted:
                    raise Aborted from None

    def write(self, slot: Slot, data: bytes) -> None:
        """Gather the node's packets into pieces of GATHER bytes: one queue hand-over, one
        archive write and one read-back wake-up per piece, not per packet."""
        slot.gathered.append(bytes(data))
        slot.gathered_size += len(data)
        if slot.gathered_size >= GATHER:
            self._pass_on(slot)

    def _pass_on(self, slot: Slot) -> None:
        if not slot.gathered:
            return
        data = b"".join(slot.gathered)
        slot.gathered, slot.gathered_size = [], 0
        self._decide(slot)
        if slot.mode == "direct":
            self._put(slot, data)
            return
        assert slot.spool_fd is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(slot.spool_fd, view) :]
        except OSError as exc:
            raise ArchiveWriteFailed(exc.errno, f"writing a spool file: {exc.strerror}") from None
        with self.cond:
            slot.written += len(data)
            self.cond.notify_all()

    def close(self, index: int, error: BaseException | None = None) -> None:
        """The node's stream of member `index` ended (with `error` when it failed)."""
        slot = self.slots[index]
        if error is None:
            try:
                self._pass_on(slot)
            except BaseException as exc:  # noqa: BLE001 (the assembling thread raises it)
                error = exc
        with self.cond:
            slot.done, slot.error = True, error
            self.cond.notify_all()
        if slot.mode == "direct":
            with contextlib.suppress(Aborted):
                self._put(slot, None)

    def abort(self) -> None:
        with self.cond:
            self.aborted = True
            self.cond.notify_all()

    # --- the archive's side ------------------------------------------------------------------

    def take(
        self, index: int, writer: ArchiveWriter, written: Callable[[int], None]
    ) -> BaseException | None:
        """Append member `index` to the archive as its bytes come, calling written(end offset)
        after each piece; returns the node's error, if any."""
        slot = self.slots[index]
        with self.cond:
            self.current = index
            self.cond.notify_all()
            while slot.mode is None and not slot.done:
                self.cond.wait(WAIT)
        if slot.mode == "direct":
            while (chunk := slot.queue.get()) is not None:
                writer.append(chunk)
                written(writer.file.tell())
        elif slot.mode == "spool":
            self._copy(slot, writer, written)
        return slot.error

    def _copy(self, slot: Slot, writer: ArchiveWriter, written: Callable[[int], None]) -> None:
        assert slot.spool_fd is not None
        copied, out = 0, writer.file.fileno()
        while True:
            with self.cond:
                while slot.written == copied and not slot.done:
                    self.cond.wait(WAIT)
                available, done = slot.written, slot.done
            while copied < available:
                try:
                    n = os.copy_file_range(
                        slot.spool_fd, out, min(COPY, available - copied), copied
                    )
                except OSError as exc:
                    raise ArchiveWriteFailed(
                        exc.errno, f"writing the archive: {exc.strerror}"
                    ) from None
                if n == 0:
                    raise ArchiveWriteFailed(0, "a spool file ended early")
                copied += n
                written(os.lseek(out, 0, os.SEEK_CUR))
            if done and copied == slot.written:
                break
        self._drop_spool(slot)

    def _drop_spool(self, slot: Slot) -> None:
        if slot.spool_fd is not None:
            os.close(slot.spool_fd)
            slot.spool_fd = None
        slot.spool_path.unlink(missing_ok=True)

    def clean(self) -> None:
        """Remove every spool file left (after a failure). The file of a member whose node is
        still streaming (a hung node, left behind after an abort) loses its name at once, its
        descriptor only with the process: never closed under a thread still writing to it."""
        for slot in self.slots:
            with self.cond:
                if slot.done:
                    self._drop_spool(slot)
                else:
                    slot.spool_path.unlink(missing_ok=True)


class SlotSink:
    """The sink a node's stream writes member bytes into."""

    def __init__(self, assembly: Assembly, slot: Slot) -> None:
        self.assembly, self.slot = assembly, slot

    def write(self, data: bytes) -> int:
        self.assembly.write(self.slot, data)
        return len(data)
