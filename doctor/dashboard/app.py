"""`disagg top`: a live view of the workers, the routing split, the prefill queue, KV transfer and the findings.

The app reads snapshots from a source (the live collector, a recording, or a synthetic one for benchmarks) in a
worker thread, keeps the same sliding window and diagnosis as `disagg doctor --live`, and redraws on each
snapshot. `--record FILE` appends every snapshot as a JSON line; `--replay FILE` plays a recording back.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Footer, Sparkline, Static

from ..live.diagnose import Diagnoser, LiveContext
from ..live.window import Snapshot, Window, snapshot_from_json, snapshot_to_json
from .view import FILTERS, SORTS, Replay, TopView, WorkerRow, arrange, build_view, table_lines

HISTORY = 120  # points per sparkline (two minutes at 1 Hz)


class ViewReady(Message):
    """A new view of the deployment; later ones replace earlier ones in the queue."""

    def __init__(self, view: TopView) -> None:
        super().__init__()
        self.view = view

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ViewReady)


def replay_source(path: str) -> Iterator[Snapshot]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield snapshot_from_json(json.loads(line))


class Player:
    """A recording played back: pause, seek and speed, set from the UI thread and applied by the polling thread."""

    SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

    def __init__(self, frames: list[Snapshot]):
        self.frames = frames
        self.position = 0  # the next frame to play
        self.paused = False
        self.speed = 1.0
        self.seek_to: int | None = None
        self.lock = threading.Lock()

    def state(self) -> Replay:
        return Replay(self.position, len(self.frames), self.paused, self.speed, self.position >= len(self.frames))

    def seek(self, delta: int) -> None:
        with self.lock:
            base = self.seek_to if self.seek_to is not None else self.position
            self.seek_to = min(len(self.frames), max(1, base + delta))

    def faster(self, step: int) -> None:
        i = self.SPEEDS.index(self.speed) + step
        self.speed = self.SPEEDS[min(len(self.SPEEDS) - 1, max(0, i))]


class TopApp(App):
    CSS_PATH = "top.tcss"
    TITLE = "disagg top"
    COMPACT_BELOW = 100  # columns: under this the side panels go below the workers, one line each
    BINDINGS = [Binding("q", "quit", "quit"), Binding("p", "probe", "probe"), Binding("s", "sort", "sort"), Binding("f", "filter", "filter"),
                Binding("space", "pause", "pause", show=False), Binding("left", "seek(-10)", "back", show=False), Binding("right", "seek(10)", "fwd", show=False),
                Binding("plus", "speed(1)", "faster", show=False), Binding("minus", "speed(-1)", "slower", show=False),
                Binding("question_mark", "help", "help", key_display="?")]

    def __init__(self, source: Callable[[], Snapshot | None] | None, target: str, rules, interval: float = 1.0, record: str | None = None,
                 probe: Callable[[LiveContext], dict] | None = None, realtime: bool = True, parse=None, static=None,
                 window: float = 30.0, min_requests: int = 5, replay: list[Snapshot] | None = None):
        super().__init__()
        self.player = Player(replay) if replay is not None else None
        self.source = source
        self.target = target
        self.interval = interval
        self.record_path = record
        self.probe_fn = probe
        self.realtime = realtime
        self.rules = rules
        self.window_s, self.parse, self.static, self.min_requests = window, parse, static or [], min_requests
        self._new_session()
        self._stop = threading.Event()
        self.view: TopView | None = None
        self.worker_rows: dict[str, WorkerRow] = {}  # what the workers table shows, for tests
        self.sort, self.filter = "worker", "all"
        self.frames = 0  # snapshots taken by the polling thread
        self.drawn = 0  # frames reflected on screen (coalesced messages skip redraws, never data)
        self.ticks = 0
        self._lines: dict[str, tuple[int, int]] = {}  # panel -> the shape of its text when last laid out

    def _new_session(self) -> None:
        """The window, diagnosis and sparkline history: owned by the polling thread (a seek starts them again)."""
        self.window = Window(seconds=self.window_s)
        self.ctx = LiveContext(window=self.window, target=self.target, deployment=self.parse, static=self.static, min_requests=self.min_requests)
        self.diagnoser = Diagnoser(self.rules)
        self.history: dict[str, deque] = {k: deque(maxlen=HISTORY) for k in SPARKS}

    def compose(self) -> ComposeResult:
        yield Static(f"disagg top  {self.target}  (waiting for the first snapshot)", id="status")
        with Horizontal(id="main"):
            with VerticalScroll(id="workers") as box:
                box.border_title = "workers"
                yield Static("", id="workers_table")
            with Vertical(id="side"):
                yield Static("", id="routing", classes="panel")
                yield Static("", id="queue", classes="panel")
                yield Static("", id="kv", classes="panel")
                for key, label in SPARKS.items():
                    with Horizontal(classes="sparkrow"):
                        yield Static(label, id=f"{key}_label", classes="sparklabel")
                        yield Sparkline([], id=f"{key}_spark", summary_function=max)
        yield Static("", id="findings")
        yield Static(HELP, id="help")
        yield Footer()

    def on_mount(self) -> None:
        self._layout_for(self.size.width)
        self.poll()

    def on_resize(self, event) -> None:
        self._layout_for(event.size.width)
        if self.view is not None:
            self._draw_workers(self.view)

    def _layout_for(self, width: int) -> None:
        self.screen.set_class(width < self.COMPACT_BELOW, "compact")

    def on_unmount(self) -> None:
        self._stop.set()

    def _next(self) -> Snapshot | None:
        if self.player is None:
            return self.source()
        p = self.player
        with p.lock:
            shown = False
            if p.seek_to is not None:  # a window is made of consecutive snapshots: build it again up to the new place
                target, p.seek_to = p.seek_to, None
                self._new_session()
                p.position = max(0, target - 1)
                for snap in p.frames[max(0, p.position - 2 * int(self.window_s / max(self.interval, 1e-3)) - 1):p.position]:
                    self.window.add(snap)
                shown = True  # the snapshot sought is shown, paused or not
            if (p.paused and not shown) or p.position >= len(p.frames):
                return None
            snap = p.frames[p.position]
            p.position += 1
            return snap

    @work(thread=True, exclusive=True)
    def poll(self) -> None:
        """Read snapshots off the UI thread; the diagnosis and the view are made here too, so the UI only draws."""
        record = open(self.record_path, "a", encoding="utf-8") if self.record_path else None
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                snap = self._next()
                if snap is None:
                    if self.player is None:
                        break
                    self._post_state()  # paused or at the end of the recording: say so, and wait for a key
                    self._stop.wait(0.05)
                    continue
                if record:
                    record.write(json.dumps(snapshot_to_json(snap)) + "\n")
                    record.flush()
                self.window.add(snap)
                _, held = self.diagnoser.step(self.ctx)
                self._record_history()
                self.frames += 1
                self.post_message(ViewReady(build_view(self.window, snap, held, {k: tuple(v) for k, v in self.history.items()},
                                                       self.player.state() if self.player else None)))
                if self.realtime:
                    speed = self.player.speed if self.player else 1.0
                    self._stop.wait(max(0.0, self.interval / speed - (time.monotonic() - started)))
        finally:
            if record:
                record.close()

    def _post_state(self) -> None:
        if self.view is not None and self.view.replay != self.player.state():
            self.post_message(ViewReady(replace(self.view, replay=self.player.state())))

    def _record_history(self) -> None:
        """Sparkline points, taken in the polling thread for every snapshot: a coalesced redraw loses no point."""
        snaps = self.window.snaps
        last_rate = lambda sig, **lab: (snaps[-1].total(sig, **lab) or 0) - (snaps[-2].total(sig, **lab) or 0) if len(snaps) > 1 else 0  # noqa: E731
        self.history["remote"].append(max(last_rate("requests", route="remote"), 0))
        self.history["queue"].append(snaps[-1].total("queue_size") or 0.0)
        self.history["kv"].append(max(last_rate("kv_bytes"), 0) / 1e6)

    def on_view_ready(self, message: ViewReady) -> None:
        try:
            self._draw(message.view)
        except NoMatches:
            if not self._stop.is_set() and self.screen.query("#status"):
                raise  # only a view that arrives while the app shuts down (its widgets gone) is dropped

    def _draw(self, v: TopView) -> None:
        self.ticks += 1  # redraws
        self.view = v
        status = f"disagg top  {v.frontend}  t={v.t:5.1f}s  systems: {', '.join(v.systems) or '?'}"
        if v.replay is not None:
            r = v.replay
            state = "END OF RECORDING" if r.ended else "PAUSED" if r.paused else f"x{r.speed:g}"
            status = f"[b reverse] REPLAY [/] {r.position}/{r.count} {state}  " + status
        if v.frontend_error:
            status += f"  [b red]frontend: {v.frontend_error}[/]"
        self._show("#status", status + (f"\n[dim]{v.note}[/]" if v.note and not self.screen.has_class("compact") else ""))
        self._draw_workers(v)
        compact = self.screen.has_class("compact")
        lines = [f"[b]routing[/] (last {v.span:.0f} s, {v.total:.0f} requests)"]
        for reason, n in v.reasons[: 2 if compact else None]:
            share = n / v.total if v.total else 0
            bar = "█" * int(share * (8 if compact else 20))
            lines.append(f"{reason:<19}{n:>6.0f} {share:>5.0%} [{'green' if reason == 'remote' else 'yellow'}]{bar}[/]")
        if v.total == 0:
            lines.append("[dim]no requests in the window[/]")
        self._show("#routing", "\n".join(lines))
        self._show("#queue", f"[b]prefill queue[/] {v.queue:.0f} waiting")
        self._show("#kv", f"[b]KV transfer[/] {v.kv_rate / 1e6:8.1f} MB/s   failures {v.failures:.0f}")
        for key, label in SPARKS.items():
            points = v.history.get(key, ())
            self.query_one(f"#{key}_spark", Sparkline).data = list(points)
            self.query_one(f"#{key}_label", Static).update(f"{label} {points[-1]:.0f}" if points else label)
        self._findings(v.held, v.remote, v.total)
        self.drawn = self.frames

    def _draw_workers(self, v: TopView) -> None:
        """One pre-formatted text table, one line per worker at any width (a DataTable re-rendering every cell each
        second cost 10% of a core with 64 workers)."""
        box = self.query_one("#workers")
        width = max(10, (box.content_size.width or self.size.width) - 1)
        rows = arrange(v.workers, self.sort, self.filter)
        self.worker_rows = {r.worker_id: r for r in rows}
        header, lines = table_lines(rows, width)
        box.border_title = f"workers ({len(rows)}/{len(v.workers)})  sort {self.sort}  filter {self.filter}"
        parts: list = [(header + "\n", "bold")]
        for line, up in lines:
            parts.append((line + "\n", "" if up else "bold red"))
        # Textual's own Content: no pass through Rich's console on every redraw
        self._show("#workers_table", Content.assemble(*parts))

    def _show(self, selector: str, content) -> None:
        """Update a panel; lay the screen out again only when the shape of its text changed (every panel is as tall as
        its text): a layout pass per panel per second was most of the dashboard's cost."""
        text = content if isinstance(content, str) else content.plain
        shape = (text.count("\n"), max(map(len, text.split("\n"))))  # lines, and the longest (it may wrap)
        changed = self._lines.get(selector) != shape
        self._lines[selector] = shape
        self.query_one(selector, Static).update(content, layout=changed)

    def _findings(self, held, remote: float, total: float) -> None:
        panel = self.query_one("#findings", Static)
        if not held:
            panel.set_class(True, "clear")
            panel.update(f"[b green]no live finding[/]  remote prefill {remote:.0f} of {total:.0f} requests in the window")
            return
        panel.set_class(False, "clear")
        top = held[0].finding
        color = {"error": "red", "warning": "yellow", "info": "cyan"}[top.severity.label]
        lines = [f"[b {color}]{top.code} {top.name}[/] [{color}]{top.severity.label}[/]" + (f"  cause: [b]{top.extra['cause']}[/]" if "cause" in top.extra else ""),
                 top.message]
        if top.fix:
            lines.append(f"[green]fix:[/] {top.fix.title}")
        ev = top.extra.get("evidence", {})
        if ev:
            lines.append("[dim]evidence: " + ", ".join(f"{k}={v}" for k, v in ev.items()) + "[/]")
        for h in held[1:5]:
            f = h.finding
            lines.append(f"[dim]also:[/] {f.code} {f.severity.label}: {f.message[:100]}")
        panel.update("\n".join(lines))

    def action_help(self) -> None:
        self.query_one("#help").toggle_class("shown")

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        if self.view is not None:
            self._draw_workers(self.view)

    def action_filter(self) -> None:
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        if self.view is not None:
            self._draw_workers(self.view)

    def action_pause(self) -> None:
        if self.player is not None:
            self.player.paused = not self.player.paused

    def action_seek(self, delta: int) -> None:
        if self.player is not None:
            self.player.seek(delta)

    def action_speed(self, step: int) -> None:
        if self.player is not None:
            self.player.faster(step)

    def action_probe(self) -> None:
        if self.probe_fn is None:
            self.notify("probe: not available for a replay", severity="warning")
            return
        self._probe()

    @work(thread=True)
    def _probe(self) -> None:
        result = self.probe_fn(self.ctx)
        self.call_from_thread(self.notify, f"probe: {result['message']}", timeout=8)


SPARKS = {"remote": "remote prefills/s", "queue": "queue waiting", "kv": "KV MB/s"}


HELP = """[b]disagg top[/]
workers      each worker process: utilisation (NVML per process, DCGM, CPU% or the engine's busy time), requests/s, prefill tokens/s
routing      where prefill ran for the requests in the window, by the router's reason
queue / KV   remote prefills waiting, KV bytes moved per second, failed transfers; sparklines over the last minutes
findings     the live doctor's findings, the most certain first, with the evidence behind the top one
keys         q quit   p probe (one request longer than the threshold: did it go remote?)   s sort   f filter   ? this help
replay       space pause   left/right seek 10 snapshots   + / - speed"""


def make_app(source, target: str, interval: float = 1.0, record: str | None = None, probe=None, realtime: bool = True, parse=None, static=None,
             window: float = 30.0, min_requests: int = 5, replay: list[Snapshot] | None = None) -> TopApp:
    """The dashboard over `source` (a callable giving the next snapshot, None at the end), or over a recording
    (`replay`: its snapshots, played with pause, seek and speed)."""
    from ..registry import default_registry

    return TopApp(source, target, [r for r in default_registry() if r.live], interval=interval, record=record, probe=probe, realtime=realtime, parse=parse,
                  static=static, window=window, min_requests=min_requests, replay=replay)
