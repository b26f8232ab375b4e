"""The live data layer: Prometheus text parsing, alias tables, the sliding window, utilisation sources."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from disagg.doctor.live import aliases, promtext
from disagg.doctor.live.scrape import ScrapeError, fetch
from disagg.doctor.live.utilisation import DcgmSource, NotAvailable, NvmlSource, PsutilSource
from disagg.doctor.live.window import Window

from .frames import snapshot

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_parser_agrees_with_prometheus_client():
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    reg = CollectorRegistry()
    c = Counter("x_requests", "h", ["route", "reason"], registry=reg)
    c.labels("local", 'dis"abled\\n').inc(3)
    h = Histogram("x_len", "h", buckets=(1, 10), registry=reg)
    h.observe(5)
    samples = {(n, lab): v for n, lab, v in promtext.parse(generate_latest(reg).decode())}
    assert samples[("x_requests_total", (("reason", 'dis"abled\\n'), ("route", "local")))] == 3
    assert samples[("x_len_bucket", (("le", "10.0"),))] == 1 and samples[("x_len_bucket", (("le", "+Inf"),))] == 1
    assert math.isnan(promtext.parse("a NaN\n")[0][2]) and promtext.parse("b +Inf 123\n")[0][2] == math.inf


def test_parser_rejects_garbage_with_its_line():
    with pytest.raises(promtext.PromParseError, match="line 2"):
        promtext.parse("ok 1\nthis is not a sample\n")


def test_vllm_names_of_two_versions_map_to_one_signal():
    old = promtext.parse('vllm:gpu_cache_usage_perc{model_name="m"} 0.5\n')
    new = promtext.parse('vllm:kv_cache_usage_perc{model_name="m"} 0.25\n')
    assert aliases.signals(old)["kv_usage"][0][1] == 0.5 and aliases.signals(new)["kv_usage"][0][1] == 0.25
    src = aliases.signals(promtext.parse('vllm:prompt_tokens_by_source_total{source="external_kv_transfer"} 7\n'))
    assert src["prompt_tokens"][0][0]["source"] == "kv_transfer"


def test_recorded_fixtures_parse_and_map():
    for path in sorted(FIXTURES.glob("*.prom")):
        samples = promtext.parse(path.read_text())
        systems = aliases.detect({s[0] for s in samples})
        assert systems, path.name
        assert aliases.signals(samples, systems), path.name


def test_window_rates_resets_and_quantiles():
    w = Window(seconds=30)
    hist = lambda n200, n1000: (  # noqa: E731
        f'disagg_request_prompt_tokens_bucket{{le="128.0"}} 0\ndisagg_request_prompt_tokens_bucket{{le="256.0"}} {n200}\n'
        f'disagg_request_prompt_tokens_bucket{{le="1024.0"}} {n200 + n1000}\ndisagg_request_prompt_tokens_bucket{{le="+Inf"}} {n200 + n1000}\n')
    w.add(snapshot(0, 'disagg_requests_total{route="local",reason="disabled"} 10\n' + hist(0, 0)))
    w.add(snapshot(1, 'disagg_requests_total{route="local",reason="disabled"} 30\n' + hist(90, 10)))
    w.add(snapshot(2, 'disagg_requests_total{route="local",reason="disabled"} 5\n' + hist(90, 10)))  # a restart reset it
    assert w.delta("requests") == 25 and w.rate("requests") == 12.5
    assert w.by_label("requests", "reason") == {"disabled": 25}
    assert 128 < w.quantile("isl_bucket", 0.5) <= 256 and 256 < w.quantile("isl_bucket", 0.95) <= 1024
    assert w.quantile("ttft_bucket", 0.5) is None


def test_window_drops_old_snapshots():
    w = Window(seconds=5)
    for t in range(10):
        w.add(snapshot(t, "disagg_prefill_queue_size 0\n"))
    assert w.first.t == 4 and w.span == 5


class FakeNVML:
    """A fake of the `pynvml` module (nvidia-ml-py) for machines without an NVIDIA GPU (tools/nvml_gpu_check.py checks
    the real one). It honours lastSeenTimeStamp as the driver does: only samples newer than it come back, and none at
    all is NVML_ERROR_NOT_FOUND. `age_ms` says how long ago a pid's newest sample was taken (CPU epoch clock)."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotFound(NVMLError):
        pass

    def __init__(self, processes: dict[int, list[int]], sm_util: dict[int, int], fail_init: bool = False, age_ms: dict[int, int] | None = None):
        self.processes, self.sm_util, self.fail_init = processes, sm_util, fail_init
        self.age_ms = age_ms or {}
        self.asked: list[tuple[int, int]] = []

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.processes)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, h):
        return type("U", (), {"gpu": 50, "memory": 10})()

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [type("P", (), {"pid": pid, "usedGpuMemory": 2**30})() for pid in self.processes[h]]

    def nvmlDeviceGetProcessUtilization(self, h, last_seen):
        self.asked.append((h, last_seen))
        now = time.time_ns() // 1000
        samples = []
        for pid in self.processes[h]:
            newest = now - self.age_ms.get(pid, 50) * 1000
            # the driver keeps a sample about every 1/6 s; an older one of the same process says 0% busy
            samples += [type("S", (), {"pid": pid, "smUtil": 0, "timeStamp": newest - 170_000})(),
                        type("S", (), {"pid": pid, "smUtil": self.sm_util[pid], "timeStamp": newest})()]
        samples = [s for s in samples if s.timeStamp > last_seen]
        if not samples:
            raise self.NVMLError_NotFound("Not Found")
        return samples


def test_nvml_maps_gpu_processes_to_workers_by_pid():
    src = NvmlSource(FakeNVML({0: [111], 1: [222]}, {111: 87, 222: 0}))
    out = src.read({"decode-0": 111, "prefill-0": 222})
    assert out["decode-0"].percent == 87 and out["prefill-0"].percent == 0 and out["prefill-0"].memory_used == 2**30
    assert out["prefill-0"].source == "nvml" and "gpu 1" in out["prefill-0"].detail


def test_nvml_reads_each_gpu_from_its_own_samples():
    # Two GPUs, a busy worker on each; GPU 1's newest sample is older than GPU 0's. With one cursor for all GPUs the
    # prefill GPU read 0% on every tick; each GPU must be asked for its own recent samples.
    fake = FakeNVML({0: [111], 1: [222]}, {111: 90, 222: 90}, age_ms={111: 10, 222: 400})
    src = NvmlSource(fake)
    for _ in range(3):
        out = src.read({"decode-0": 111, "prefill-0": 222})
        assert out["decode-0"].percent == 90 and out["prefill-0"].percent == 90
    assert set(src.last_seen) == {0, 1}


def test_nvml_process_without_a_recent_sample_reads_idle():
    # A process whose last kernel ran 5 s ago has no sample in the window: NVML says NOT_FOUND, the worker reads 0%.
    out = NvmlSource(FakeNVML({0: [111]}, {111: 95}, age_ms={111: 5000})).read({"prefill-0": 111})
    assert out["prefill-0"].percent == 0


def test_nvml_other_errors_are_not_taken_for_idle():
    class Broken(FakeNVML):
        def nvmlDeviceGetProcessUtilization(self, h, last_seen):
            raise self.NVMLError("GPU is lost")

    na = NvmlSource(Broken({0: [111]}, {111: 95})).read({"prefill-0": 111})
    assert isinstance(na, NotAvailable) and "GPU is lost" in na.reason


def test_nvml_absent_is_a_reason_not_an_exception():
    na = NvmlSource(FakeNVML({}, {}, fail_init=True)).read({"decode-0": 1})
    assert isinstance(na, NotAvailable) and "no NVIDIA driver" in na.reason
    cpu_only = NvmlSource(FakeNVML({0: [999]}, {999: 5})).read({"decode-0": 1})
    assert isinstance(cpu_only, NotAvailable) and "PID" in cpu_only.reason


def test_real_nvml_path_on_this_machine_says_why_when_there_is_no_gpu():
    result = NvmlSource().read({"self": 1})
    assert isinstance(result, (dict, NotAvailable))  # a GPU machine gives readings; others a reason, never a crash


def test_psutil_reads_a_busy_process():
    import os
    import subprocess
    import sys
    import time

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        src = PsutilSource()
        src.read({"spin": busy.pid, "me": os.getpid()})
        time.sleep(1.0)
        out = src.read({"spin": busy.pid, "me": os.getpid()})
        # A busy loop gets a core when the machine is idle and less under load (49% was seen with CI beside it);
        # what must hold is that the reading sees it working while the sleeping test process does not.
        assert out["spin"].percent > 10 and out["me"].percent < out["spin"].percent / 2, out
    finally:
        busy.kill()


def test_dcgm_through_a_prometheus_api():
    body = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0", "Hostname": "node-a", "pod": "prefill-0"}, "value": [0, "3"]},
        {"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "1", "Hostname": "node-a", "pod": "decode-0"}, "value": [0, "91"]},
    ]}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            payload = json.dumps(body if "GPU_UTIL" in self.path else {"status": "success", "data": {"result": []}}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = DcgmSource(f"http://127.0.0.1:{server.server_port}").read({"prefill-0": "prefill-0", "decode-0": "decode-0"})
        assert out["prefill-0"].percent == 3 and out["decode-0"].percent == 91 and out["decode-0"].source == "dcgm"
        assert isinstance(DcgmSource(None).read({}), NotAvailable)
    finally:
        server.shutdown()


def test_fetch_caps_size_and_time():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 5000)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ScrapeError, match="refused"):
            fetch(f"http://127.0.0.1:{server.server_port}/", max_bytes=1000)
        with pytest.raises(ScrapeError):
            fetch("http://127.0.0.1:9/")  # nothing listens: an answer, not a hang
    finally:
        server.shutdown()


def test_fetch_error_names_what_the_server_said():
    """A 503 from the frontend carries its reason (which worker failed, how), so a failed probe says why."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()
            self.wfile.write(json.dumps({"error": {"message": "decode worker d0 failed: connection reset"}}).encode())

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ScrapeError, match=r"HTTP 503 \(decode worker d0 failed: connection reset\)"):
            fetch(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()


def _zeroed(text: str, *names: str) -> str:
    """The same scrape with the named counters at zero: the frame before the recorded one."""
    import re

    for name in names:
        text = re.sub(rf"^({re.escape(name)}(?:\{{[^}}]*\}})?) \S+$", r"\1 0", text, flags=re.M)
    return text


def test_real_dynamo_recordings_tell_prefill_used_from_prefill_under_another_model():
    """Recorded from Dynamo 1.6.1's frontend with its mock engine (prefill + decode), here, in a private netns."""
    from disagg.doctor.live.diagnose import LiveContext
    from disagg.doctor.registry import default_registry

    dg501 = default_registry().get("DG501")
    counters = ("dynamo_frontend_router_admission_received_total", "dynamo_frontend_requests_total", "dynamo_frontend_failures_total")

    def diagnose(name: str):
        text = (FIXTURES / name).read_text()
        w = Window()
        w.add(snapshot(0, _zeroed(text, *counters)))
        w.add(snapshot(5, text))
        return list(dg501().check(LiveContext(window=w, target="http://dynamo", min_requests=5)))

    assert diagnose("dynamo-1.6.1-frontend-disagg.prom") == []  # 10 requests, 10 prefill admissions: prefill is used
    [f] = diagnose("dynamo-1.6.1-frontend-prefill-other-model.prom")
    assert f.extra["cause"] == "no_prefill_workers"
    assert f.extra["evidence"]["models"] == ["tiny", "tiny-other"] and f.extra["evidence"]["router_workers"] == {"decode": 1.0}
    assert "different model names" in f.message and "backend.unavailable" in f.message


def test_thousand_token_prompts_read_near_a_thousand_with_their_bucket():
    """The runtime's token buckets (powers of two and half way between): ~1000-token prompts read p50 in 768-1024,
    not 768 as with powers of two alone, and the bucket is given with the estimate."""
    from disagg.runtime.metrics import TOKEN_BUCKETS

    def hist(n: int) -> str:
        rows = [f'disagg_request_prompt_tokens_bucket{{le="{float(b)}"}} {n if b >= 1000 else 0}' for b in TOKEN_BUCKETS]
        return "\n".join(rows + [f'disagg_request_prompt_tokens_bucket{{le="+Inf"}} {n}']) + "\n"

    w = Window(seconds=30)
    w.add(snapshot(0, hist(0)))
    w.add(snapshot(1, hist(100)))
    assert 768 < w.quantile("isl_bucket", 0.5) <= 1024
    assert w.quantile_bounds("isl_bucket", 0.5) == (768.0, 1024.0)
