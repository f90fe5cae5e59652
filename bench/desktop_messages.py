"""Message view benchmark: 100,000 synthetic messages (varied markdown) behind a
``MessageView`` of 900 x 700, offscreen.

Measures
  - time to first paint (model load of the newest window + show + first viewport paint)
    and RSS then;
  - per-frame paint time while scrolling back through the history by pixel steps: each
    frame scrolls, runs pending events (relayouts after measured heights) and forces a
    ``repaint()``; at the top the next page of 500 older messages is prepended, as
    endless scroll-back does (that frame counts too);
  - the longest stall when a message is appended at the bottom of the long history
    (append + events + repaint).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/desktop_messages.py [--frames 3000]
        [--pictures 0.1]

``--pictures F`` gives a fraction F of the messages a picture attachment (one of a few
shared pictures, already in the preview cache, as after scrolling past them once), so
the rows paint inline previews; without it the run is the text-only one above.

Wall-clock frame times include whatever else the machine runs; each is also given in
the GUI thread's CPU time (``time.thread_time``), which a loaded machine does not inflate
(``uptime`` before a run says how loaded it is).

Floors (DESIGN.md, this machine): a PySide6 window with a 100,000-row list view paints
first in ~0.4 s at ~90 MB; Nheko 0.33 s / 181 MB; Gajim 0.74 s / 111 MB. Targets (issue
4): p99 < 16 ms per frame, append stall < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nexus_desktop.qt import QApplication, QEvent, QObject

TEMPLATES = [
    "hey, anyone around? {n}",
    "**bold** and *italic* and __underlined__ and ~~struck~~ — message {n}",
    "here is some code:\n```python\ndef f(x):\n    return x * {n}\n```",
    "> quoting someone\n> over two lines\nand my answer {n}",
    "- one\n- two\n- three {n}",
    "<@1> have you seen https://example.org/page/{n} ?",
    "`inline code` and a ||spoiler {n}||",
    "A longer message that wraps over several lines because people do write paragraphs "
    "now and then, explaining things at length, with no markdown at all, number {n}. " * 2,
    "ok",
    "lol {n}",
]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


PICTURE_SIZES = [(1280, 720), (800, 600), (300, 400), (1920, 1080), (64, 64), (500, 250)]


def make_pictures() -> list:  # type: ignore[type-arg]
    from nexus_protocol.models import Attachment

    return [
        Attachment.model_construct(
            id=900 + n,
            filename=f"screenshot-{n}.png",
            size=width * height // 3,
            url=f"http://relay.invalid/attachments/1/{900 + n}/screenshot-{n}.png",
            proxy_url=f"http://relay.invalid/attachments/1/{900 + n}/screenshot-{n}.png",
            content_type="image/png",
            width=width,
            height=height,
            description=None,
            spoiler=False,
        )
        for n, (width, height) in enumerate(PICTURE_SIZES)
    ]


def make_messages(count: int, pictures: float = 0.0) -> list:  # type: ignore[type-arg]
    from nexus_protocol.models import Message, User

    shared = make_pictures()
    every = round(1 / pictures) if pictures > 0 else 0

    users = [User(id=i, username=name) for i, name in enumerate(["me", "alice", "bob", "carol"], 1)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    messages = []
    for n in range(count):
        author = users[(n // 3) % len(users)]
        messages.append(
            Message.model_construct(
                id=10_000 + n,
                channel_id=1,
                author=author,
                content=TEMPLATES[n % len(TEMPLATES)].format(n=n),
                timestamp=start + timedelta(minutes=n * 2),
                edited_timestamp=None,
                reactions=[],
                message_reference=None,
                referenced_message=None,
                member=None,
                attachments=[shared[n % len(shared)]] if every and n % every == every // 2 else [],
            )
        )
    return messages


def prime_pictures(session: object, width: int) -> None:
    """Put the shared pictures in the preview cache at the size the rows show them."""
    from nexus_desktop.attachments import attachment_images_for, preview_size
    from nexus_desktop.qt import QColor, QImage, QSize
    from nexus_desktop.views.message_delegate import LEFT, RIGHT

    cache = attachment_images_for(session)  # type: ignore[arg-type]
    room = max(50, width - LEFT - RIGHT)
    for n, attachment in enumerate(make_pictures()):
        box = QSize(*preview_size(attachment, room))
        image = QImage(box, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(QColor.fromHsv(n * 50 % 360, 160, 220))
        cache.prime(attachment, box, 1.0, image, False)


class FirstPaint(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and self.at is None:
            self.at = -1.0  # mark; the time is taken after the paint returns
        return False


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--step", type=int, default=40, help="pixels scrolled per frame")
    parser.add_argument("--appends", type=int, default=50)
    parser.add_argument(
        "--pictures", type=float, default=0.0, help="fraction of messages with a picture"
    )
    args = parser.parse_args()

    app = QApplication.instance() or QApplication(["bench"])
    from nexus_desktop.session import AppSession
    from nexus_desktop.views.message_view import MessageView

    rss_start = rss_mb()
    built = time.perf_counter()
    history = make_messages(args.messages, args.pictures)
    built = time.perf_counter() - built
    rss_history = rss_mb()

    session = AppSession(Path(tempfile.mkdtemp()))
    started = time.perf_counter()
    view = MessageView(session)
    view.delegate.set_names({1: "me", 2: "alice", 3: "bob", 4: "carol"}, {}, 1)
    if args.pictures:
        prime_pictures(session, 900 - view.list.verticalScrollBar().sizeHint().width())
    view.model.load(history)
    view.resize(900, 700)
    probe = FirstPaint()
    view.list.viewport().installEventFilter(probe)
    view.show()
    view.list.scrollToBottom()
    while probe.at is None:
        app.processEvents()
    first_paint = time.perf_counter() - started
    app.processEvents()
    rss_first = rss_mb()

    # Scroll back by pixel steps.
    bar = view.list.verticalScrollBar()
    view.list.scrollToBottom()
    app.processEvents()
    frames: list[float] = []
    frames_cpu: list[float] = []  # the same frames in this thread's CPU time
    prepends: list[float] = []
    next_page_end = len(history) - view.model.rowCount()
    seen = set()
    for _ in range(args.frames):
        t = time.perf_counter()
        cpu = time.thread_time()
        if bar.value() <= bar.minimum() and next_page_end > 0:
            page = history[max(0, next_page_end - 500) : next_page_end]
            next_page_end -= len(page)
            view.model.prepend(page)
            app.processEvents()
            prepends.append(time.perf_counter() - t)
        bar.setValue(bar.value() - args.step)
        app.processEvents()
        view.list.viewport().repaint()
        frames.append(time.perf_counter() - t)
        frames_cpu.append(time.thread_time() - cpu)
        top = view.list.indexAt(view.list.viewport().rect().topLeft())
        if top.isValid():
            seen.add(top.row() + next_page_end)
    traversed = len(seen)

    # Back to the present (what "Jump to present" does: reload the newest window),
    # then append at the bottom.
    view.model.load(history)
    app.processEvents()
    view.list.scrollToBottom()
    app.processEvents()
    stalls: list[float] = []
    stalls_cpu: list[float] = []
    extra = make_messages(args.messages + args.appends, args.pictures)[args.messages :]
    for message in extra:
        t = time.perf_counter()
        cpu = time.thread_time()
        view.model.append(message)
        app.processEvents()
        view.list.viewport().repaint()
        stalls.append(time.perf_counter() - t)
        stalls_cpu.append(time.thread_time() - cpu)
    app.processEvents()
    at_bottom = view.at_bottom()
    rss_end = rss_mb()

    ms = 1000.0
    if args.pictures:
        print(f"pictures: on {args.pictures:.0%} of the messages, previews cached")
    print(
        f"messages: {args.messages:,} synthetic (built in {built:.2f} s, "
        f"+{rss_history - rss_start:.0f} MB); model window {view.model.rowCount():,} rows"
    )
    print(f"first paint: {first_paint:.3f} s   RSS then: {rss_first:.0f} MB")
    print(
        "  floors: PySide6 100k-row list ~0.4 s / ~90 MB; Nheko 0.33 s / 181 MB; "
        "Gajim 0.74 s / 111 MB"
    )
    print(
        f"scroll: {len(frames):,} frames of {args.step} px, {traversed:,} rows passed the top, "
        f"{len(prepends)} pages prepended"
    )
    print(
        f"  per frame: p50 {statistics.median(frames) * ms:.2f} ms   "
        f"p99 {percentile(frames, 0.99) * ms:.2f} ms   max {max(frames) * ms:.1f} ms   "
        f"(target p99 < 16 ms)"
    )
    print(
        f"  per frame, CPU time of the GUI thread (what a loaded machine's other processes "
        f"do not add): p50 {statistics.median(frames_cpu) * ms:.2f} ms   "
        f"p99 {percentile(frames_cpu, 0.99) * ms:.2f} ms   max {max(frames_cpu) * ms:.1f} ms"
    )
    if prepends:
        print(
            f"  page prepend frames: median {statistics.median(prepends) * ms:.1f} ms, "
            f"max {max(prepends) * ms:.1f} ms"
        )
    print(
        f"append at the bottom: {len(stalls)} appends, median "
        f"{statistics.median(stalls) * ms:.2f} ms, longest stall {max(stalls) * ms:.1f} ms "
        f"(target < 50 ms); still at bottom: {at_bottom}"
    )
    print(
        f"  CPU time: median {statistics.median(stalls_cpu) * ms:.2f} ms, "
        f"longest {max(stalls_cpu) * ms:.1f} ms"
    )
    print(f"RSS at end: {rss_end:.0f} MB")
    view.close()


if __name__ == "__main__":
    main()
