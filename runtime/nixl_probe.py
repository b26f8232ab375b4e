"""One measured NIXL transfer between two processes of this host, for `disagg doctor --env`.

    python -m disagg.runtime.nixl_probe [--bytes N] [--repeats 3] [--timeout 30]

A target process registers a buffer with NIXL (UCX backend) and hands its agent metadata over a pipe; this process
READs the buffer with NIXL, checks every byte, and prints one line `DISAGG_PROBE {json}`: bytes, the best of
`--repeats` reads in seconds, the backend, and what failed if anything did. Run with `UCX_PROTO_INFO=y`, UCX itself
prints, on this process's stdout, the protocol and transport it chose for each operation; the caller reads the
transport that carried the READ from there (doctor/host.py parse_proto_info), so it is UCX's word, not a guess.
The target keeps calling NIXL's progress (get_new_notifs) while it waits: UCX's connection set-up needs both sides.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time

MARK = "DISAGG_PROBE "


def _pattern(nbytes: int):
    """Bytes that differ from their neighbours' (a counter of 8-byte words), so a short or shifted read shows."""
    import numpy as np

    words = np.arange((nbytes + 7) // 8, dtype=np.uint64)
    return words.view(np.uint8)[:nbytes].copy()


def _target(conn, nbytes: int) -> None:
    import numpy as np

    from .kv import nixl_api

    try:
        api = nixl_api()
        agent = api.nixl_agent("disagg-probe-target", api.nixl_agent_config(enable_prog_thread=False, backends=["UCX"]))
        buf = _pattern(nbytes)
        agent.register_memory([(buf.ctypes.data, nbytes, 0, "")], "DRAM")
        conn.send({"metadata": agent.get_agent_metadata(), "addr": buf.ctypes.data})
    except Exception as exc:  # noqa: BLE001 - reported to the caller as the probe's result
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        return
    while not conn.poll(0.001):
        agent.get_new_notifs()  # progress: UCX's wire-up needs the target to answer
    conn.recv()


def measure(nbytes: int, repeats: int, timeout: float) -> dict:
    import numpy as np

    out: dict = {"bytes": nbytes, "seconds": None, "backend": "UCX", "repeats": repeats, "error": None}
    try:
        from .kv import nixl_api

        api = nixl_api()
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"NIXL is not importable: {type(exc).__name__}: {exc}"
        return out
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_target, args=(there, nbytes), daemon=True)
    proc.start()
    try:
        if not here.poll(timeout):
            out["error"] = f"the target process did not register its buffer within {timeout:.0f} s"
            return out
        offer = here.recv()
        if "error" in offer:
            out["error"] = f"target: {offer['error']}"
            return out
        agent = api.nixl_agent("disagg-probe-initiator", api.nixl_agent_config(enable_prog_thread=False, backends=["UCX"]))
        buf = np.zeros(nbytes, dtype=np.uint8)
        agent.register_memory([(buf.ctypes.data, nbytes, 0, "")], "DRAM")
        peer = agent.add_remote_agent(offer["metadata"])
        local = agent.get_xfer_descs([(buf.ctypes.data, nbytes, 0)], "DRAM")
        remote = agent.get_xfer_descs([(offer["addr"], nbytes, 0)], "DRAM")
        best = None
        for _ in range(max(1, repeats)):
            buf[:] = 0
            handle = agent.initialize_xfer("READ", local, remote, peer)
            start = time.perf_counter()
            state = agent.transfer(handle)
            deadline = time.monotonic() + timeout
            while state not in ("DONE", "ERR") and time.monotonic() < deadline:
                state = agent.check_xfer_state(handle)
            took = time.perf_counter() - start
            agent.release_xfer_handle(handle)
            if state != "DONE":
                out["error"] = "the READ failed" if state == "ERR" else f"the READ did not finish within {timeout:.0f} s"
                return out
            best = took if best is None else min(best, took)
        if not np.array_equal(buf, _pattern(nbytes)):
            out["error"] = "the bytes read differ from the bytes written"
            return out
        out["seconds"] = best
        out["gbytes_per_s"] = round(nbytes / best / 1e9, 3)
        return out
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    finally:
        try:
            here.send("done")
        except OSError:
            pass
        proc.join(5)
        if proc.is_alive():
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bytes", type=int, default=64 << 20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    result = measure(args.bytes, args.repeats, args.timeout)
    sys.stdout.flush()
    print(MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
