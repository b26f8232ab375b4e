from __future__ import annotations

from disagg.schemas import pairing

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import transports
from .._helpers import as_int
from .._ports import KV_PORT_DEFAULT

# vLLM's V0 PyNcclConnector (SimpleConnector with a PyNcclPipe) joins a torch process group of `kv_parallel_size`
# members as rank `kv_rank` at kv_ip:kv_port (StatelessProcessGroup.create(host=kv_ip, port=kv_port + offset,
# rank=kv_rank, world_size=kv_parallel_size): vllm-project/vllm v0.8.5, vllm/distributed/kv_transfer/kv_pipe/
# pynccl_pipe.py; KVTransferConfig defaults kv_ip "127.0.0.1" and kv_port (_ports.KV_PORT_DEFAULT) in vllm/config.py).
_SIMPLE = ("vllm.distributed.kv_transfer.kv_connector.simple_connector", "SimpleConnector")
_DEFAULT_IP = "127.0.0.1"


def _member(w) -> tuple | None:
    """(group address, kv_rank, kv_parallel_size) of a worker that joins a PyNccl KV group; None otherwise.
    The kv_* settings come from the kv-transfer-config JSON or V0's --kv-* flags (engines._kv_config)."""
    if w.engine != "vllm" or w.known("kv_connector") != "PyNcclConnector":
        return None
    t = transports(w, {"PyNcclConnector"})
    if t is None or t.unknown or t.classes != frozenset({_SIMPLE}):
        return None  # a release whose factory does not load SimpleConnector for it, or an unknown one
    r, n = as_int(w.known("kv_rank")), as_int(w.known("kv_parallel_size"))
    if r is None or n is None:
        return None
    port = as_int(w.known("kv_port", KV_PORT_DEFAULT))
    return (w.host.network, str(w.known("kv_ip", _DEFAULT_IP)), port), r, n


class DG213(Rule):
    """## What it does
    Reports vLLM V0 `PyNcclConnector` instances of one script that join one KV process group (the same `kv_ip` and
    `kv_port`, defaults 127.0.0.1:14579) but disagree on `kv_parallel_size`, share a `kv_rank`, or hold a `kv_rank`
    outside `0..kv_parallel_size-1`. Instances in exclusive `if`/`case` branches, or started after the script stopped
    the others, are not compared.

    ## Why is this bad?
    Each instance joins a torch process group of `kv_parallel_size` members as rank `kv_rank`
    (`StatelessProcessGroup.create` in vLLM's PyNcclPipe, v0.8.5). With two sizes, a rank twice or a rank outside the
    group, the rendezvous never completes: both engines hang at start and no KV moves.

    ## Example
    ```bash
    vllm serve m --port 8100 --kv-transfer-config '{"kv_connector":"PyNcclConnector","kv_role":"kv_producer","kv_rank":0,"kv_parallel_size":2}' &
    vllm serve m --port 8200 --kv-transfer-config '{"kv_connector":"PyNcclConnector","kv_role":"kv_consumer","kv_rank":0,"kv_parallel_size":2}' &
    ```

    ## Use instead
    ```bash
    vllm serve m --port 8100 --kv-transfer-config '{"kv_connector":"PyNcclConnector","kv_role":"kv_producer","kv_rank":0,"kv_parallel_size":2}' &
    vllm serve m --port 8200 --kv-transfer-config '{"kv_connector":"PyNcclConnector","kv_role":"kv_consumer","kv_rank":1,"kv_parallel_size":2}' &
    ```
    """

    code = "DG213"
    name = "pynccl-group-mismatch"
    severity = Severity.ERROR

    def check(self, ctx):
        groups: dict[tuple, list] = {}
        for w in ctx.deployment.engines():
            m = _member(w)
            if m is None:
                continue
            where, r, n = m
            if not 0 <= r < n:
                yield ctx.finding(self, w.where("kv_rank"), f"{w.name}: kv_rank {r} is outside its PyNccl KV group of kv_parallel_size {n} (ranks 0..{n - 1}): "
                                  "the group never forms and the engine hangs at start", worker=w,
                                  fix=Fix(f"give each member a distinct kv_rank in 0..{n - 1}"))
            groups.setdefault(where, []).append((w, r, n))
        for where, members in groups.items():
            yield from self._group(ctx, f"{where[1]}:{where[2]}", members)

    def _group(self, ctx, address: str, members: list):
        for i, (w, r, n) in enumerate(members):
            for o, orank, on in members[:i]:
                if not pairing.concurrent(w, o):
                    continue
                if on != n:
                    key, why = "kv_parallel_size", f"kv_parallel_size {n} here and {on} at {o.name}"
                elif orank == r:
                    key, why = "kv_rank", f"both are kv_rank {r}"
                else:
                    continue
                yield ctx.finding(self, w.where(key), f"{w.name} and {o.name} join one PyNccl KV group (kv_ip:kv_port {address}) but {why}: "
                                  "the group never forms, both engines hang at start and no KV moves", worker=w,
                                  related=(ctx.related(o, o.where(key), f"{o.name}'s {key}"),),
                                  fix=Fix("use one kv_parallel_size for the group and a distinct kv_rank per member (producer 0, consumer 1)"))
                break
