from __future__ import annotations

from disagg.schemas import pairing

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import transports
from .._helpers import as_int

# vLLM's V0 PyNcclConnector (SimpleConnector with a PyNcclPipe) joins a torch process group of `kv_parallel_size`
# members as rank `kv_rank` at kv_ip:kv_port (StatelessProcessGroup.create(host=kv_ip, port=kv_port + offset,
# rank=kv_rank, world_size=kv_parallel_size): vllm-project/vllm v0.8.5, vllm/distributed/kv_transfer/kv_pipe/
# pynccl_pipe.py; KVTransferConfig defaults kv_ip "127.0.0.1", kv_port 14579 in vllm/config.py of that release).
_SIMPLE = ("vllm.distributed.kv_transfer.kv_connector.simple_connector", "SimpleConnector")
_DEFAULT_IP, _DEFAULT_PORT = "127.0.0.1", 14579


def _field(w, key: str):
    """A KVTransferConfig field as the worker states it (JSON or the V0 `--kv-*` flags), with its span; None unset."""
    cfg = w.settings.get("kv_config")
    if cfg is not None and cfg.known and isinstance(cfg.value, dict):
        return (cfg.value[key], cfg.span) if key in cfg.value else None
    flag = w.flags.get(key.replace("_", "-"))
    return (flag.value, flag.span) if flag is not None and flag.known else None


def _member(w) -> tuple | None:
    """(group address, kv_rank, kv_parallel_size, span) of a worker that joins a PyNccl KV group; None otherwise."""
    conn = _field(w, "kv_connector")
    if w.engine != "vllm" or conn is None or conn[0] != "PyNcclConnector":
        return None
    t = transports(w, {"PyNcclConnector"})
    if t is None or t.unknown or t.classes != frozenset({_SIMPLE}):
        return None  # a release whose factory does not load SimpleConnector for it, or an unknown one
    rank, size = _field(w, "kv_rank"), _field(w, "kv_parallel_size")
    if rank is None or size is None:
        return None
    r, n = as_int(rank[0]), as_int(size[0])
    if r is None or n is None:
        return None
    ip, port = _field(w, "kv_ip"), _field(w, "kv_port")
    where = (w.host.network, str(ip[0]) if ip else _DEFAULT_IP, as_int(port[0]) if port else _DEFAULT_PORT)
    return where, r, n, rank[1]


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
            where, r, n, span = m
            if not 0 <= r < n:
                yield ctx.finding(self, span, f"{w.name}: kv_rank {r} is outside its PyNccl KV group of kv_parallel_size {n} (ranks 0..{n - 1}): "
                                  "the group never forms and the engine hangs at start", worker=w,
                                  fix=Fix(f"give each member a distinct kv_rank in 0..{n - 1}"))
            groups.setdefault(where, []).append((w, r, n, span))
        for where, members in groups.items():
            yield from self._group(ctx, f"{where[1]}:{where[2]}", members)

    def _group(self, ctx, address: str, members: list):
        for i, (w, r, n, span) in enumerate(members):
            for o, orank, on, ospan in members[:i]:
                if o.epoch != w.epoch or not pairing.together(w.alternative, o.alternative, one_invocation=True):
                    continue
                if on != n:
                    why = f"kv_parallel_size {n} here and {on} at {o.name}"
                elif orank == r:
                    why = f"both are kv_rank {r}"
                else:
                    continue
                yield ctx.finding(self, span, f"{w.name} and {o.name} join one PyNccl KV group (kv_ip:kv_port {address}) but {why}: "
                                  "the group never forms, both engines hang at start and no KV moves", worker=w,
                                  related=(ctx.related(o, ospan, f"{o.name}'s kv-transfer-config"),),
                                  fix=Fix("use one kv_parallel_size for the group and a distinct kv_rank per member (producer 0, consumer 1)"))
                break
