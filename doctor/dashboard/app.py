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

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Footer, Sparkline, Static

from ..live.diagnose import Diagnoser, LiveContext
from ..live.window import Snapshot, Window, snapshot_from_json, snapshot_to_json

HISTORY = 120  # points per sparkline (two minutes at 1 Hz)


class SnapshotReady(Message):
    """A new snapshot and what the diagnosis made of it; later ones replace earlier ones in the queue."""

    def __init__(self, snapshot: Snapshot, held: list) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.held = held

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotReady)


def replay_source(path: str) -> Iterator[Snapshot]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield snapshot_from_json(json.loads(line))


class TopApp(App):
    CSS_PATH = "top.tcss"
    TITLE = "disagg top"
    BINDINGS = [Binding("q", "quit", "quit"), Binding("p", "probe", "probe"), Binding("question_mark", "help", "help", key_display="?")]

    def __init__(self, source: Callable[[], Snapshot | None], target: str, rules, interval: float = 1.0, record: str | None = None,
                 probe: Callable[[LiveContext], dict] | None = None, realtime: bool = True, parse=None, static=None):
        super().__init__()
        self.source = source
        self.target = target
        self.interval = interval
        self.record_path = record
        self.probe_fn = probe
        self.realtime = realtime
        self.window = Window(seconds=30)
        self.ctx = LiveContext(window=self.window, target=target, deployment=parse, static=static or [])
        self.diagnoser = Diagnoser(rules)
        self.history: dict[str, deque] = {k: deque(maxlen=HISTORY) for k in ("remote", "local", "queue", "kv")}
        self._stop = threading.Event()
        self.worker_rows: dict[str, tuple] = {}  # what the workers table shows, for tests and the record
        self._history_lock = threading.Lock()
        self.frames = 0  # snapshots taken by the polling thread
        self.drawn = 0  # frames reflected on screen (coalesced messages skip redraws, never data)
        self.ticks = 0
        self._lines: dict[str, tuple[int, int]] = {}  # panel -> the shape of its text when last laid out

    def compose(self) -> ComposeResult:
        yield Static(f"disagg top  {self.target}  (waiting for the first snapshot)", id="status")
        with Horizontal(id="main"):
            with VerticalScroll(id="workers") as box:
                box.border_title = "workers"
                yield Static("", id="workers_table")
            with Vertical(id="side"):
                yield Static("", id="routing", classes="panel")
                yield Sparkline([], id="remote_spark", summary_function=max)
                yield Static("", id="queue", classes="panel")
                yield Sparkline([], id="queue_spark", summary_function=max)
                yield Static("", id="kv", classes="panel")
                yield Sparkline([], id="kv_spark", summary_function=max)
        yield Static("", id="findings")
        yield Static(HELP, id="help")
        yield Footer()

    def on_mount(self) -> None:
        self.poll()

    def on_unmount(self) -> None:
        self._stop.set()

    @work(thread=True, exclusive=True)
    def poll(self) -> None:
        """Read snapshots off the UI thread; the diagnosis runs here too, so the UI only draws."""
        record = open(self.record_path, "a", encoding="utf-8") if self.record_path else None
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                snap = self.source()
                if snap is None:
                    break
                if record:
                    record.write(json.dumps(snapshot_to_json(snap)) + "\n")
                    record.flush()
                self.window.add(snap)
                _, held = self.diagnoser.step(self.ctx)
                self._record_history(snap)
                self.frames += 1
                self.post_message(SnapshotReady(snap, held))
                if self.realtime:
                    self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            if record:
                record.close()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.ticks += 1  # redraws
        snap, w = message.snapshot, self.window
        reasons = w.by_label("requests", "reason")
        total = sum(reasons.values())
        remote = reasons.get("remote", 0.0)
        notes = "; ".join(snap.utilisation_notes[-1:])
        status = f"disagg top  {snap.frontend}  t={snap.t:5.1f}s  systems: {', '.join(snap.systems) or '?'}"
        if snap.frontend_error:
            status += f"  [b red]frontend: {snap.frontend_error}[/]"
        self._show("#status", status + (f"\n[dim]{notes}[/]" if notes else ""))
        self._update_workers(snap)
        span = max(w.span, 1e-9)
        lines = [f"[b]routing[/] (last {w.span:.0f} s, {total:.0f} requests)"]
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            if n > 0:
                share = n / total if total else 0
                bar = "█" * int(share * 20)
                lines.append(f"{reason:<19}{n:>6.0f} {share:>5.0%} [{'green' if reason == 'remote' else 'yellow'}]{bar}[/]")
        if total == 0:
            lines.append("[dim]no requests in the window[/]")
        self._show("#routing", "\n".join(lines))
        queue = snap.total("queue_size") or 0.0
        self._show("#queue", f"[b]prefill queue[/] {queue:.0f} waiting")
        kv_rate = w.rate("kv_bytes")
        failures = sum(v for v in w.by_label("kv_failures", "reason").values())
        self._show("#kv", f"[b]KV transfer[/] {kv_rate / 1e6:8.1f} MB/s   failures {failures:.0f}")
        with self._history_lock:
            self.query_one("#remote_spark", Sparkline).data = list(self.history["remote"])
            self.query_one("#queue_spark", Sparkline).data = list(self.history["queue"])
            self.query_one("#kv_spark", Sparkline).data = list(self.history["kv"])
        self._findings(message.held, remote, total, span)
        self.drawn = self.frames

    def _show(self, selector: str, content) -> None:
        """Update a panel; lay the screen out again only when the shape of its text changed (every panel is as tall as
        its text): a layout pass per panel per second was most of the dashboard's cost."""
        text = content if isinstance(content, str) else content.plain
        shape = (text.count("\n"), max(map(len, text.split("\n"))))  # lines, and the longest (it may wrap)
        changed = self._lines.get(selector) != shape
        self._lines[selector] = shape
        self.query_one(selector, Static).update(content, layout=changed)

    def _record_history(self, snap: Snapshot) -> None:
        """Sparkline points, taken in the polling thread for every snapshot: a coalesced redraw loses no point."""
        snaps = self.window.snaps
        last_rate = lambda sig, **lab: (snaps[-1].total(sig, **lab) or 0) - (snaps[-2].total(sig, **lab) or 0) if len(snaps) > 1 else 0  # noqa: E731
        with self._history_lock:
            self.history["remote"].append(max(last_rate("requests", route="remote"), 0))
            self.history["queue"].append(snap.total("queue_size") or 0.0)
            self.history["kv"].append(max(last_rate("kv_bytes"), 0) / 1e6)

    COLUMNS = (("worker", 14), ("role", 8), ("host", 16), ("pid", 8), ("device", 8), ("util %", 8), ("source", 8), ("busy %", 8), ("req/s", 8), ("prefill tok/s", 14), ("up", 4))

    def _update_workers(self, snap: Snapshot) -> None:
        """One pre-formatted text table: with 64 workers, a DataTable re-rendering every cell each second cost 10% of a core."""
        w = self.window
        parts: list = [("".join(f"{label:<{width}}" for label, width in self.COLUMNS).rstrip() + "\n", "bold")]
        self.worker_rows = {}
        requests = w.by_label("worker_requests", "worker_id")  # one pass over the window for every worker
        for wv in snap.workers:
            reading = snap.utilisation.get(wv.worker_id)
            busy = w.worker_busy_share(wv.worker_id)
            util, src = (f"{reading.percent:5.1f}", reading.source) if reading is not None else ("  n/a", "-")
            busy_pct = f"{busy * 100:5.1f}" if busy is not None else "  n/a"
            rps = requests.get(wv.worker_id, 0.0) / w.span if w.span > 0 else 0.0
            tps = w.worker_rate(wv.worker_id, "prompt_tokens_computed") or 0.0
            row = (wv.worker_id, wv.role, wv.host or "-", str(wv.pid or "-"), wv.device, util, src, busy_pct, f"{rps:6.1f}", f"{tps:8.0f}")
            self.worker_rows[wv.worker_id] = row + ("up" if wv.up else "DOWN",)
            parts.append("".join(f"{value:<{width}}" for value, (_, width) in zip(row, self.COLUMNS, strict=False)))
            parts.append(("up\n", "green") if wv.up else ("DOWN\n", "bold red"))
        # Textual's own Content: no pass through Rich's console on every redraw
        self._show("#workers_table", Content.assemble(*parts))

    def _findings(self, held, remote: float, total: float, span: float) -> None:
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

    def action_probe(self) -> None:
        if self.probe_fn is None:
            self.notify("probe: not available for a replay", severity="warning")
            return
        self._probe()

    @work(thread=True)
    def _probe(self) -> None:
        result = self.probe_fn(self.ctx)
        self.call_from_thread(self.notify, f"probe: {result['message']}", timeout=8)


HELP = """[b]disagg top[/]
workers      each worker process: utilisation (NVML per process, DCGM, CPU% or the engine's busy time), requests/s, prefill tokens/s
routing      where prefill ran for the requests in the window, by the router's reason
queue / KV   remote prefills waiting, KV bytes moved per second, failed transfers; sparklines over the last minutes
findings     the live doctor's findings, the most certain first, with the evidence behind the top one
keys         q quit   p probe (one request longer than the threshold: did it go remote?)   ? this help"""


def make_app(source, target: str, interval: float = 1.0, record: str | None = None, probe=None, realtime: bool = True, parse=None, static=None) -> TopApp:
    from ..registry import default_registry

    return TopApp(source, target, [r for r in default_registry() if r.live], interval=interval, record=record, probe=probe, realtime=realtime, parse=parse, static=static)
