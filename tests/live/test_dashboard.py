"""`disagg top`: driven with Textual's pilot over a recording of the seed scenario, plus a snapshot test."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

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
            assert rows["prefill-0"][1] == "prefill" and float(rows["prefill-0"][8]) == 0.0  # no requests/s to the prefill worker
            assert float(rows["prefill-0"][7]) == 0.0  # and its engine is never busy
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
