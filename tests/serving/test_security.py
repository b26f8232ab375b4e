"""A run of `disagg serve` is closed to everyone but its own processes and the clients holding its API key."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import urllib.parse

import numpy as np
import pytest

from disagg.runtime.channel import Channel, ChannelError

from .conftest import EXAMPLES, complete, prompt, raw, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    import yaml

    tmp = tmp_path_factory.mktemp("keyed")
    config = tmp / "secret-envs.yaml"
    cfg = yaml.safe_load((EXAMPLES / "seed-fixed.yaml").read_text())
    cfg["PrefillWorker"]["ServiceArgs"]["envs"] = [{"name": "HF_TOKEN", "value": "hf_do_not_leak"}, {"name": "PLAIN", "value": "shown"}]
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    s = start_server(config, tmp, "--api-key", "sk-test-key")
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


def test_config_shows_secrets_redacted_and_workers_get_them(keyed):
    code, text = raw(keyed.url, None, path="/config", method="GET", headers=AUTH)
    assert code == 200 and "hf_do_not_leak" not in text
    cfg = json.loads(text)
    envs = cfg["sections"]["PrefillWorker"]["ServiceArgs"]["envs"]
    assert {"name": "HF_TOKEN", "value": "<redacted>"} in envs and {"name": "PLAIN", "value": "shown"} in envs
    prefill = next(w for w in json.loads(raw(keyed.url, None, path="/workers", method="GET", headers=AUTH)[1])["workers"] if w["role"] == "prefill")
    with open(f"/proc/{prefill['pid']}/environ", "rb") as handle:
        assert b"HF_TOKEN=hf_do_not_leak" in handle.read().split(b"\0")  # applied to the worker, as Dynamo did


def test_what_the_run_writes_is_private_and_its_secret_is_on_no_command_line(keyed):
    assert stat.S_IMODE(os.stat(keyed.log_dir).st_mode) == 0o700
    for name in os.listdir(keyed.log_dir):
        assert stat.S_IMODE(os.stat(keyed.log_dir / name).st_mode) == 0o600, name
        assert b"hf_do_not_leak" not in (keyed.log_dir / name).read_bytes() or name == "plan.json"
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
        store = KVStore(prefill.arena)
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
            store.take(a.kv_id)
            prefill.withdraw(a)
            store.free(a)
            assert not prefill.arena.view(a.offset, 4096).any()  # released KV is zeroed before the memory is reused
        finally:
            pump.cancel()

    asyncio.run(case())


def test_forged_kv_written_into_a_region_is_caught_by_the_keyed_checksum():
    from disagg.runtime.mock_engine import KVLayout
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
