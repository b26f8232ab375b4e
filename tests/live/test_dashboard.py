"""`disagg top`: driven with Textual's pilot over a recording of the seed scenario, plus a snapshot test."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from disagg.doctor.dashboard.app import make_app, replay_source
from disagg.doctor.live.window import snapshot_from_json, snapshot_to_json

RECORDING = Path(__file__).resolve().parents[1] / "fixtures" / "top-seed-broken.jsonl"


def _app(**kw):
    frames = iter(list(replay_source(str(RECORDING))))
    return make_app(lambda: next(frames, None), "http://127.0.0.1:8351 (replay)", realtime=False, **kw)


async def _settle(app, pilot, frames: int):
    """Until every frame of the recording has been read and the last one drawn."""
    for _ in range(500):
        if app.frames >= frames and app.drawn == app.frames:
            break
        await pilot.pause(0.02)
    assert app.frames == frames and app.drawn == frames
    await pilot.pause()


def test_recording_round_trips():
    line = RECORDING.read_text().splitlines()[3]
    snap = snapshot_from_json(json.loads(line))
    assert snapshot_to_json(snap) == json.loads(line)


def test_dashboard_shows_idle_prefill_workers_and_the_explanation(tmp_path):
    async def run():
        app = _app()
        async with app.run_test(size=(160, 45)) as pilot:
            await _settle(app, pilot, 13)
            rows = app.worker_rows
            assert set(rows) == {"decode-0", "prefill-0"} and "prefill-0" in str(app.query_one("#workers_table").render())
            assert rows["prefill-0"].role == "prefill" and float(rows["prefill-0"].rps) == 0.0  # no requests/s to the prefill worker
            assert float(rows["prefill-0"].busy) == 0.0  # and its engine is never busy
            findings = str(app.query_one("#findings").render())
            assert "DG501" in findings and "remote_prefill_disabled" in findings
            routing = str(app.query_one("#routing").render())
            assert "disabled" in routing and "100%" in routing
            await pilot.press("question_mark")
            assert app.query_one("#help").has_class("shown")
            await pilot.press("p")  # a replay has nothing to probe: a notice, not a crash
            await pilot.press("q")
        assert app.return_code in (0, None)

    asyncio.run(run())


def test_record_writes_every_snapshot(tmp_path):
    out = tmp_path / "rec.jsonl"

    async def run():
        app = _app(record=str(out))
        async with app.run_test(size=(120, 40)) as pilot:
            await _settle(app, pilot, 13)

    asyncio.run(run())
    assert len(out.read_text().splitlines()) == len(RECORDING.read_text().splitlines())


def test_dashboard_snapshot(snap_compare):
    async def settle(pilot):
        await _settle(pilot.app, pilot, 13)

    assert snap_compare(_app(), terminal_size=(160, 45), run_before=settle)


def _table(app) -> list[str]:
    return str(app.query_one("#workers_table").render()).rstrip("\n").split("\n")


def _many_workers(n: int):
    """The recording's snapshots with `n` workers each (long ids and hosts), for layout tests."""
    from dataclasses import replace

    frames = list(replay_source(str(RECORDING)))
    out = []
    for snap in frames:
        base = snap.workers[0]
        workers = tuple(replace(base, worker_id=f"{'prefill' if i % 2 else 'decode'}-worker-number-{i}", role="prefill" if i % 2 else "decode",
                                host=f"pod-{i}.very-long-namespace.svc.cluster.local", up=i != 3) for i in range(n))
        out.append(replace(snap, workers=workers))
    return out


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (160, 45)])
def test_one_line_per_worker_at_any_size(size):
    """At 80x24 each worker row wrapped onto five lines; columns now drop by priority and cells are cut instead."""
    frames = _many_workers(8)

    async def run():
        it = iter(frames)
        app = make_app(lambda: next(it, None), "http://127.0.0.1:8351 (replay)", realtime=False)
        async with app.run_test(size=size) as pilot:
            await _settle(app, pilot, len(frames))
            table = app.query_one("#workers_table")
            lines = _table(app)
            assert len(lines) == 1 + 8, lines  # the header and one line per worker
            assert all(len(line) <= table.content_size.width for line in lines), (table.content_size.width, lines)
            assert lines[0].startswith("worker") and "state" in lines[0]  # the most important columns stay
            assert any("DOWN" in line for line in lines)
            for label in ("remote prefills/s", "queue waiting", "KV MB/s"):
                assert label in str(app.query_one(f"#{ {'remote prefills/s': 'remote', 'queue waiting': 'queue', 'KV MB/s': 'kv'}[label]}_label").render())
            assert app.screen.has_class("compact") == (size[0] < 100)

    asyncio.run(run())


def test_sort_and_filter_keys():
    frames = _many_workers(6)

    async def run():
        it = iter(frames)
        app = make_app(lambda: next(it, None), "http://127.0.0.1:8351 (replay)", realtime=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await _settle(app, pilot, len(frames))
            await pilot.press("f")  # prefill only
            await pilot.pause()
            assert {r.role for r in app.worker_rows.values()} == {"prefill"} and len(_table(app)) == 1 + 3
            await pilot.press("f", "f")  # down only
            await pilot.pause()
            assert list(app.worker_rows) == ["prefill-worker-number-3"]
            await pilot.press("f", "s")  # all again, sorted by role
            await pilot.pause()
            assert [r.role for r in app.worker_rows.values()] == ["decode"] * 3 + ["prefill"] * 3

    asyncio.run(run())


def test_replay_marks_pauses_seeks_and_ends():
    frames = list(replay_source(str(RECORDING)))

    async def run():
        app = make_app(None, "http://127.0.0.1:8351 (replay)", interval=0.01, replay=frames)
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(300):
                if app.view is not None and app.view.replay.ended:
                    break
                await pilot.pause(0.02)
            status = str(app.query_one("#status").render())
            assert "REPLAY" in status and "END OF RECORDING" in status and f"{len(frames)}/{len(frames)}" in status
            await pilot.press("space")
            await pilot.press("left")  # back 10 snapshots, paused there
            for _ in range(100):
                if app.view.replay.paused and app.view.replay.position == len(frames) - 10:
                    break
                await pilot.pause(0.02)
            assert app.view.replay.position == len(frames) - 10 and "PAUSED" in str(app.query_one("#status").render())
            await pilot.press("plus")
            assert app.player.speed == 2.0

    asyncio.run(run())


def test_fast_polling_never_races_the_ui():
    """The UI thread iterated the window's deque while the polling thread appended (`deque mutated during
    iteration` at interval 0.01): the UI now draws immutable views only. A few seconds here; bench/soak_top.py runs
    ten minutes."""
    frames = _many_workers(16)
    count = {"n": 0}

    def source():
        count["n"] += 1
        if count["n"] >= 300:
            return None
        snap = frames[count["n"] % len(frames)]
        return snap.__class__(**{**snap.__dict__, "t": count["n"] * 0.01})

    async def run():
        app = make_app(source, "http://synthetic", interval=0.01)
        async with app.run_test(size=(80, 24)) as pilot:
            deadline = time.monotonic() + 60  # a bound for a loaded machine; the polling itself is what is tested
            while app.frames < 299 and time.monotonic() < deadline:
                await pilot.pause(0.05)
            assert app.frames == 299 and app.drawn > 0
        assert not app.return_code

    asyncio.run(run())
