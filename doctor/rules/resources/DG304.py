from __future__ import annotations

from disagg.schemas import pairing

from ...finding import Fix, Severity
from ...registry import Rule
from .._ports import binds, where

# Pairs of kinds another rule already reports: DG207 (two NIXL side channels), DG611 (two SGLang bootstrap servers).
_ELSEWHERE = {("side_channel", "side_channel"), ("bootstrap", "bootstrap")}


class DG304(Rule):
    """## What it does
    Reports two processes of a prefill/decode deployment that bind the same port on one network (one script's
    processes, host-network containers and pods pinned to one node, the containers of one pod): HTTP `--port`, the
    NIXL side channel, P2pNcclConnector's `kv_port` (one port per rank: `kv_port + rank`), SGLang's bootstrap server,
    vLLM's Mooncake bootstrap server, vLLM's KV-events publisher, and LightLLM's NCCL rendezvous port (`--nccl_port`,
    bound by the server's rank 0) and its decode server's KV-move rpyc port (`--pd_decode_rpyc_port`), and the `--port` of llm-d's P/D
    routing sidecar, which runs beside vLLM in one pod. Ports come from the file, else from the engine's
    default where a source says what it is (`doctor/rules/_ports.py` lists them); a port set at run time is not
    compared, nor processes that never run at once: in exclusive `if`/`case` branches (or functions called only from
    them), the processes one command becomes when a variable differs per branch, and processes started before and
    after the script stops what it started (`kill`, `pkill`, `killall`, `fuser -k`, `xargs kill`, `wait`).

    ## Why is this bad?
    One port can be bound once per network namespace: the second process fails at start with "Address already in
    use" (a P2pNccl rank, a side channel or a bootstrap server that cannot bind takes its engine down), or, for an
    HTTP port, the client reaches whichever process holds it. Two of one kind that another rule covers (DG207: NIXL
    side channels; DG611: SGLang bootstrap servers) are left to that rule.

    ## Example
    ```bash
    vllm serve m --port 8100 --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_producer","kv_port":"21001"}' &
    vllm serve m --port 21001 --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_consumer","kv_port":"22001"}' &
    ```

    ## Use instead
    ```bash
    vllm serve m --port 8100 --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_producer","kv_port":"21001"}' &
    vllm serve m --port 8200 --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_consumer","kv_port":"22001"}' &
    ```
    """

    code = "DG304"
    name = "port-bound-twice"
    severity = Severity.ERROR
    also = {Severity.WARNING: "when one of the two ports is an engine's default rather than written in the file"}

    def check(self, ctx):
        by_net: dict[str, list] = {}
        for w in ctx.deployment.workers:
            if w.host.network.startswith("unpinned-host:") or w.known("engine_part"):
                continue  # hostNetwork pods not pinned to one node may land on different nodes; parts of one engine are one server
            by_net.setdefault(w.host.network, []).append(w)
        for workers in by_net.values():
            if len(workers) < 2:
                continue
            taken: dict[int, tuple] = {}
            for w in workers:
                reported = set()
                for b in binds(w):
                    first = taken.get(b.port)
                    if first is None:
                        taken[b.port] = (w, b)
                        continue
                    other, ob = first
                    if other is w or tuple(sorted((b.kind, ob.kind))) in _ELSEWHERE or (other.name, b.port) in reported:
                        continue
                    if other.span == w.span or not pairing.concurrent(w, other):
                        continue  # alternatives (if/case branches, functions called from them, one command read per branch), not neighbours
                    reported.add((other.name, b.port))
                    both = b.written and ob.written
                    yield ctx.finding(self, where(w, b), f"{w.name} binds {b.what} and {other.name} binds {ob.what} on the same network: "
                                      f"port {b.port} can be bound once, so the second to start fails with \"Address already in use\"",
                                      worker=w, severity=Severity.ERROR if both else Severity.WARNING,
                                      related=(ctx.related(other, where(other, ob), f"{other.name} binds {b.port} here"),),
                                      fix=Fix(f"give {w.name} and {other.name} different ports"))
