from __future__ import annotations

import functools

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import can_exchange, transports, vllm_releases
from .._helpers import connector_of

# The fields of vLLM's KVTransferConfig that decide whether KV moves; every field of each release is generated
# (transports.json "vllm-kv-config", read from vllm/config/kv_transfer.py or vllm/config.py).
_FIELDS = ("kv_connector", "kv_role")


@functools.cache  # a pure function of the generated tables, asked twice for every key of every worker's config
def _fields() -> frozenset[str]:
    """Every KVTransferConfig field of any release we read: a field of another release is no misspelling."""
    return knowledge.transport_names("vllm-kv-config", frozenset(knowledge.transport_releases_read("vllm-kv-config")))


def _near(key: str, fields: frozenset[str]) -> str | None:
    """The decisive field `key` misspells; None for a field of the release (or of any release we read)."""
    if key in _FIELDS or key in fields or not key.startswith("kv"):
        return None
    import difflib

    match = difflib.get_close_matches(key, _FIELDS, n=1, cutoff=0.85)
    return match[0] if match else None


def _key_span(w, key: str):
    s = w.settings.get("kv_config")
    return s.span


class DG202(Rule):
    """## What it does
    Reports a `kv-transfer-config` that is not valid JSON or holds a key that is no field of vLLM's `KVTransferConfig`
    in the targeted release (where that class forbids extra fields; the fields per release are generated), and a
    prefill/decode pair whose connectors speak no
    common transport. Connectors are compared by the class vLLM's connector factory loads for them in the release
    the file targets (generated from each release's `KVConnectorFactory.register_connector` calls), never by their
    names; a class loaded from `kv_connector_module_path` cannot be compared and is not reported here (DG212 says
    so). A connector that wraps others (`PdConnector`, `MultiConnector`) speaks each of them: Dynamo's
    KV-cache-manager pattern runs prefill with `PdConnector[DynamoConnector, NixlConnector]` against a decode
    worker with plain `NixlConnector`, and that pair works; a Dynamo 0.5-0.9 prefill worker started with
    `--connector kvbm` alone (KVBM's DynamoConnector, no NIXL) against a decode worker that pulls with NIXL does not.

    ## Why is this bad?
    vLLM parses `--kv-transfer-config` as JSON at start and exits on an error. Two workers with unrelated
    connectors cannot hand KV to each other: every transfer fails and, with vLLM's old `recompute` policy, the
    decode worker silently redoes the prefill.

    ## Example
    ```yaml
    VllmWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"PyNcclConnector"}'
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    ```
    """

    code = "DG202"
    name = "kv-connector-mismatch"
    severity = Severity.ERROR
    on_roles = True

    def check(self, ctx):
        for w in ctx.deployment.workers:
            err = w.settings.get("kv_config_error")
            if err is not None:
                yield ctx.finding(self, err.span, f"{w.name}: --kv-transfer-config {err.value}: the engine exits at start", worker=w,
                                  fix=Fix("write it as JSON, e.g. '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}'"))
            cfg = w.settings.get("kv_config")
            if cfg is not None and cfg.known and isinstance(cfg.value, dict):
                for key in cfg.value:
                    near = _near(str(key), _fields())
                    if near and near not in cfg.value:
                        yield ctx.finding(self, _key_span(w, key), f"{w.name}: {key!r} is no KVTransferConfig field; did you mean {near!r}? "
                                          f"Without {near} this worker has no KV connector", worker=w, fix=Fix(f"rename {key!r} to {near!r}"))
                yield from self._not_fields(ctx, w, cfg.value)
        for pair in ctx.pairs:
            d, p = pair.decode, pair.prefill
            dc, _ = connector_of(d)
            pc, _ = connector_of(p)
            if not dc or not pc:
                continue
            kvbm = _kvbm_only_prefill(d, p)
            if kvbm is not None:
                yield ctx.pair_finding(self, pair, p, p.where("connector"),
                                       f"{p.name} (prefill) runs --connector kvbm without nixl while {d.name} (decode) pulls KV with NIXL: KVBM alone "
                                       f"offloads to its own cache and hands the decode worker no KV ({kvbm})", other_key="connector",
                                       fix=Fix("add nixl to the prefill worker's connector list: --connector kvbm nixl"))
                continue
            why = self._apart(d, dc, p, pc)
            if why is None:
                continue
            key = "transfer_backend" if p.engine == "trtllm" else "kv_connector"
            yield ctx.pair_finding(self, pair, p, p.where(key),
                                   f"{p.name} (prefill) uses KV connector {', '.join(sorted(pc))} but {d.name} (decode) uses {', '.join(sorted(dc))}: "
                                   f"they share no transport, so no KV block can move ({why})", other_key=key,
                                   fix=Fix(f"use the same kv_connector ({', '.join(sorted(dc))}) on both workers"))

    def _not_fields(self, ctx, w, cfg: dict):
        """Keys that are no KVTransferConfig field of the targeted release, where every targeted release forbids extra
        fields (vLLM's @config pydantic dataclasses): vLLM exits at start."""
        if w.engine != "vllm":
            return
        releases, described = vllm_releases(w)
        strict = knowledge.transport_pattern("vllm-kv-config", "extra_fields_forbidden")
        if releases is None or not strict or not releases <= strict:
            return
        fields = knowledge.transport_names("vllm-kv-config", releases)
        for key in cfg:
            if not isinstance(key, str) or key in fields or _near(key, _fields()):
                continue  # a field, or a misspelt kv_connector/kv_role (reported above)
            elsewhere = knowledge.transport_in("vllm-kv-config", key)
            ordered = sorted(elsewhere, key=knowledge.version_key)
            also = f" (a field in vLLM {ordered[0]}..{ordered[-1]})" if ordered else ""
            yield ctx.finding(self, _key_span(w, key), f"{w.name}: {key!r} is no field of KVTransferConfig in {described}{also}, which forbids "
                              f"extra fields: vLLM exits at start [{knowledge.transport_source('vllm-kv-config', releases)}]", worker=w,
                              fix=Fix(f"remove {key!r} from the kv-transfer-config"))

    @staticmethod
    def _apart(d, dc: set[str], p, pc: set[str]) -> str | None:
        """Why the two sides cannot exchange KV, from what each connector is in the release the file targets; None
        when they can, or when that cannot be settled (a class from kv_connector_module_path, an unread release)."""
        if d.engine == "vllm" and p.engine == "vllm":
            dt, pt = transports(d, dc), transports(p, pc)
            if dt is None or pt is None or can_exchange(dt, pt) is not False:
                return None
            shown = lambda t: ", ".join(sorted(f"{m}.{c}" for m, c in t.classes))  # noqa: E731
            releases, described = vllm_releases(p)
            return f"{described} loads {shown(pt)} for the prefill side and {shown(dt)} for the decode side [{knowledge.transport_source('vllm', releases or frozenset())}]"
        if d.engine == "trtllm" and p.engine == "trtllm":
            # cache_transceiver_config.backend on both sides; DEFAULT lets TensorRT-LLM choose, so it settles nothing
            db = {n.split(":", 1)[1].lower() for n in dc if n.startswith("cache_transceiver:")}
            pb = {n.split(":", 1)[1].lower() for n in pc if n.startswith("cache_transceiver:")}
            if not db or not pb or "default" in db | pb or db & pb:
                return None
            return knowledge.fact("trtllm.cache_transceiver_both_sides").cite()
        return None


def _connector_words(w) -> list[str] | None:
    s = w.settings.get("connector")
    if w.program != "dynamo.vllm" or s is None or not s.known or "kv_config" in w.settings:
        return None
    return [c.strip().lower() for c in str(s.value).replace(",", " ").split()]


def _kvbm_only_prefill(d, p) -> str | None:
    """Why a dynamo.vllm prefill worker started with `--connector kvbm` (no `nixl`) cannot hand KV to a decode worker
    that pulls with NIXL, or None. In 0.5.0..0.9.1 `kvbm` alone builds KVBM's DynamoConnector, which returns no
    kv_transfer_params (fact dynamo.vllm.kvbm_connector_no_pd); from 1.0.0 dynamo.vllm refuses --connector at start
    (pattern vllm.connector_flag_rejected). Only where every candidate release is one or the other."""
    pw, dw = _connector_words(p), _connector_words(d)
    if pw is None or dw is None or set(pw) != {"kvbm"} or "nixl" not in dw:
        return None
    fact = knowledge.fact("dynamo.vllm.kvbm_connector_no_pd")
    rejected = knowledge.pattern("dynamo", "vllm.connector_flag_rejected").releases
    if any(knowledge.verdict(w.target, "dynamo", fact.releases | rejected) is not True for w in (d, p)):
        return None
    later = "; from 1.0.0 dynamo.vllm refuses --connector at start" if p.target.releases("dynamo") & rejected else ""
    return f"{p.target.describe('dynamo')}: KVBM's DynamoConnector returns no kv_transfer_params in 0.5.0..0.9.1{later} [{fact.source}]"
