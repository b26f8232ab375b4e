"""A run of `disagg serve` is closed to everyone but its own processes and the clients holding its API key."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import stat
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from disagg.runtime.channel import Channel, ChannelError
from disagg.runtime.identity import HEALTH_CHALLENGE, HEALTH_PROOF, health_proof, run_id

from .conftest import EXAMPLES, complete, prompt, raw, start_server

pytestmark = pytest.mark.slow


PLANTED = Path(__file__).resolve().parents[1] / "fixtures" / "serving" / "planted-secrets.yaml"
RUN_SECRET = "a-known-run-secret-for-the-proof-test"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keyed")
    key_file = tmp / "api-key"
    key_file.write_text("sk-test-key\n")
    s = start_server(PLANTED, tmp, "--api-key-file", str(key_file), env={"DISAGG_RUN_SECRET": RUN_SECRET})
    yield s
    s.stop()


AUTH = {"Authorization": "Bearer sk-test-key"}


def test_the_api_key_guards_v1_config_and_workers_but_not_health_or_metrics(keyed):
    for path, method, body in (("/v1/completions", "POST", b'{"prompt": "hello", "max_tokens": 1}'), ("/v1/models", "GET", None),
                               ("/config", "GET", None), ("/workers", "GET", None), ("/debug/faults", "POST", b"{}")):
        code, text = raw(keyed.url, body, path=path, method=method)
        assert code == 401 and json.loads(text)["error"]["type"] == "authentication_error", (path, text)
        code, _ = raw(keyed.url, body, path=path, method=method, headers={"Authorization": "Bearer wrong"})
        assert code == 401
    code, r = complete(keyed, {"prompt": prompt(200), "max_tokens": 2}, headers=AUTH)
    assert code == 200 and r["disagg"]["route"] == "remote"
    assert raw(keyed.url, None, path="/health", method="GET")[0] == 200
    assert raw(keyed.url, None, path="/metrics", method="GET")[0] == 200


def test_config_serves_none_of_the_planted_secrets_and_workers_get_their_envs(keyed):
    code, text = raw(keyed.url, None, path="/config", method="GET", headers=AUTH)
    assert code == 200 and not re.search(r"s3cr3t", text), re.findall(r"s3cr3t[\w-]*", text)  # 0 of the 8 forms
    assert str(PLANTED.parent) not in text and json.loads(text)["name"] == "planted-secrets.yaml"
    prefill = next(w for w in json.loads(raw(keyed.url, None, path="/workers", method="GET", headers=AUTH)[1])["workers"] if w["role"] == "prefill")
    with open(f"/proc/{prefill['pid']}/environ", "rb") as handle:
        assert b"OPENAI_API_KEY=s3cr3t-envlist-a7c2" in handle.read().split(b"\0")  # applied to the worker, as Dynamo did


def test_health_without_the_key_says_ready_and_nothing_else(keyed):
    code, text = raw(keyed.url, None, path="/health", method="GET")
    assert code == 200 and json.loads(text) == {"status": "ready"}
    workers = keyed.workers()
    code, text = raw(keyed.url, None, path="/health", method="GET", headers=AUTH)
    detail = json.loads(text)
    assert code == 200 and detail["status"] == "ok" and {w["id"] for w in detail["workers"]} == {w["id"] for w in workers}
    code, text = raw(keyed.url, None, path="/health", method="GET", headers={"Authorization": "Bearer wrong"})
    assert run_id(RUN_SECRET) not in text and not any(str(w["pid"]) in text or w["address"] in text for w in workers), text
    # /metrics stays open for Prometheus: it carries worker pids (disagg_worker_info, how the live doctor maps GPU
    # processes to workers), never the run id or an address.
    code, text = raw(keyed.url, None, path="/metrics", method="GET")
    assert run_id(RUN_SECRET) not in text and not any(w["address"] in text for w in workers)


def test_the_frontend_proves_it_belongs_to_the_run_without_publishing_the_run_id(keyed):
    import urllib.request

    for nonce in ("a" * 32, "b" * 32):
        req = urllib.request.Request(keyed.url + "/health", headers={HEALTH_CHALLENGE: nonce})
        with urllib.request.urlopen(req, timeout=5) as r:
            proof = r.headers[HEALTH_PROOF]
        assert proof == health_proof(RUN_SECRET.encode(), nonce) and proof != health_proof(b"another secret", nonce)


@pytest.mark.parametrize("flags, message", [
    (("--api-key-file", "/nonexistent/key", "--api-key", "k"), "give the API key one way"),
    (("--api-key-file", "/nonexistent/key"), "cannot read it"),
])
def test_an_api_key_that_cannot_be_used_stops_the_start(tmp_path, flags, message):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "disagg", "serve", str(EXAMPLES / "seed-fixed.yaml"), "--port", "0", *flags],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_what_the_run_writes_is_private_and_its_secret_is_on_no_command_line(keyed):
    assert stat.S_IMODE(os.stat(keyed.log_dir).st_mode) == 0o700
    for name in os.listdir(keyed.log_dir):
        assert stat.S_IMODE(os.stat(keyed.log_dir / name).st_mode) == 0o600, name
        assert b"s3cr3t" not in (keyed.log_dir / name).read_bytes() or name in ("plan.json", "serve.err"), name
    workers = json.loads(raw(keyed.url, None, path="/workers", method="GET", headers=AUTH)[1])["workers"]
    for pid in [w["pid"] for w in workers] + [keyed.proc.pid]:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            assert b"DISAGG_RUN_SECRET" not in handle.read()


def test_every_listener_is_on_loopback(keyed):
    psutil = pytest.importorskip("psutil")
    procs = [psutil.Process(keyed.proc.pid)]
    procs += procs[0].children(recursive=True)
    listening = [c.laddr for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening


def test_a_worker_answers_nothing_without_the_run_secret(keyed):
    workers = json.loads(raw(keyed.url, None, path="/workers", method="GET", headers=AUTH)[1])["workers"]
    host, port = next(w["address"] for w in workers if w["role"] == "prefill").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:  # the old HTTP routes: nothing answers them
        s.sendall(b"GET /nixl/metadata HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except TimeoutError:
            pass
    assert b"HTTP/1.1 200" not in data and b"nixl" not in data.lower()

    async def call_with_a_guess():
        with pytest.raises(ChannelError) as exc:
            await Channel(host, int(port), b"guessed secret", "prefill-0").call("prefill", tokens=[1, 2, 3], request="r")
        return exc.value.reason

    assert asyncio.run(call_with_a_guess()) == "auth"
    assert keyed.metric("disagg_engine_connections_rejected_total", worker_id="prefill-0") >= 2


def test_a_nixl_peer_reads_only_the_region_it_was_handed_and_never_released_kv():
    """Two NIXL agents in one process: a prefill side that registers one region per request (as KVStore and
    NixlTransport do) and a peer. The peer can read the region whose metadata it was handed; not another
    request's region; and a released region is zeroed before anyone can read it again."""
    try:
        from disagg.runtime.kv import Arena, KVStore, KVTransferError, NixlTransport, nixl_api

        nixl_api()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"NIXL is not importable here: {exc}")

    async def case():
        prefill, decode = NixlTransport("attack-prefill", Arena(1 << 20)), NixlTransport("attack-peer", Arena(1 << 20))
        store = KVStore(prefill.arena, withdraw=prefill.withdraw)
        a, b = store.reserve(4096), store.reserve(4096)
        prefill.arena.view(a.offset, 4096)[:] = 7
        prefill.arena.view(b.offset, 4096)[:] = 9
        md_a = prefill.expose(a)

        async def progress():
            while True:
                prefill.poll_notifications()
                await asyncio.sleep(0.0001)

        pump = asyncio.ensure_future(progress())
        try:
            await decode.read(md_a, prefill.arena.addr + a.offset, 4096, 0, timeout=5)
            assert decode.arena.view(0, 4096).min() == 7  # the region it was handed
            with pytest.raises(KVTransferError):  # request b's region was never exposed to it
                await decode.read(md_a, prefill.arena.addr + b.offset, 4096, 0, timeout=5)
            assert store.release(a, "read") and a.registration is None  # withdrawn from NIXL, zeroed, freed: one call
            assert not prefill.arena.view(a.offset, 4096).any()  # released KV is zeroed before the memory is reused
        finally:
            pump.cancel()

    asyncio.run(case())


def test_forged_kv_written_into_a_region_is_caught_by_the_keyed_checksum():
    from disagg.runtime.mock_kv import KVLayout
    from disagg.runtime.plan import ModelShape

    layout = KVLayout(ModelShape(), b"run secret")
    tokens = list(prompt(64).encode())
    data = np.zeros(layout.nbytes(len(tokens)), dtype=np.uint8)
    layout.fill(data, tokens)
    want = layout.checksum(tokens)
    forged = data.copy().view(np.uint64)
    forged[5] += 1
    forged[6] -= 1  # keeps a plain sum (and would keep CRC-32 forgeable); the keyed checksum moves
    assert layout.verify(forged.view(np.uint8), 0) != want


def test_addresses_are_never_taken_from_a_request(keyed):
    parsed = urllib.parse.urlparse(keyed.url)
    code, text = raw(keyed.url, json.dumps({"prompt": "x", "max_tokens": 1, "kv": {"url": f"http://{parsed.netloc}/steal"}}).encode(), headers=AUTH)
    assert code == 400 and "unsupported parameter: kv" in text
