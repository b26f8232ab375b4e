"""Prometheus alerting rules from the live rules: what `disagg doctor --live` diagnoses over a window, as alerts a
cluster evaluates on its own (`disagg doctor --emit-alerts`).

Every metric name comes from the alias tables (aliases.py), so one alert covers each release those tables know: a
signal with two names (vLLM renamed its counters to `_total`) is queried as both, `or`-ed. Each alert names the DG
code that explains it (`disagg doctor --explain DGxxx`), and `alert_tests()` writes promtool unit tests that feed
each alert the series of its failure and of a healthy deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from disagg.schemas.metrics import WORKER

from .aliases import TABLES

WINDOW = "5m"


def series(system: str, signal: str, labels: dict[str, str] | None = None) -> list[str]:
    """Each name a system exposes a signal under, as a selector with the alias's label filter and `labels`."""
    out = []
    for name, want, _ in TABLES[system].get(signal, []):
        matchers = {**want, **(labels or {})}
        inner = ",".join(f'{k}{"=~" if any(c in v for c in "|.*") else "="}"{v}"' for k, v in sorted(matchers.items()))
        out.append(f"{{__name__=\"{name}\"{',' + inner if inner else ''}}}")
    return out


def rate(system: str, signal: str, labels: dict[str, str] | None = None) -> str | None:
    """`sum(rate(...))` of a counter signal over the alert window, across its names (None: the system lacks it)."""
    names = series(system, signal, labels)
    if not names:
        return None
    return " or ".join(f"sum(rate({n}[{WINDOW}]))" for n in names) if len(names) == 1 else "(" + " or ".join(f"sum(rate({n}[{WINDOW}]))" for n in names) + ")"


def zero_if_absent(expr: str) -> str:
    """A sum that is 0, not absent, when no series matches (a labelled counter appears at its first increment)."""
    return f"({expr} or on() vector(0))"


@dataclass(frozen=True)
class Alert:
    name: str
    code: str  # the live rule that explains it
    severity: str  # critical | warning
    expr: str
    for_: str
    summary: str
    system: str
    fires_on: dict = field(default_factory=dict, compare=False)  # promtool test input: series -> values, that fire it
    quiet_on: dict = field(default_factory=dict, compare=False)  # and a healthy deployment's, that do not
    quiet_also: tuple = field(default=(), compare=False)  # more series that must not fire it (a look-alike that is healthy)

    def rule(self) -> dict:
        return {"alert": self.name, "expr": self.expr, "for": self.for_,
                "labels": {"severity": self.severity, "dg_code": self.code, "system": self.system},
                "annotations": {"summary": self.summary, "description": f"{self.summary} Explained by {self.code}: `disagg doctor --explain {self.code}`; "
                                "`disagg doctor --live URL` names the cause with its evidence."}}


def _disagg() -> list[Alert]:
    req = lambda **lab: rate("disagg", "requests", lab)  # noqa: E731
    flowing = f"{req()} > 0"
    remote = zero_if_absent(req(route="remote"))
    counter = "disagg_requests_total"
    return [
        Alert("DisaggPrefillTrafficZero", "DG501", "critical", f"({flowing}) and on() ({remote} == 0)", "5m",
              "Requests flow but none was prefilled remotely: every prefill runs on the decode workers.", "disagg",
              {f'{counter}{{route="local",reason="disabled"}}': "0+60x20"}, {f'{counter}{{route="remote",reason="remote"}}': "0+60x20"}),
        Alert("DisaggRemoteRoutedWithoutTransferredKV", "DG509", "critical",
              f"({req(route='remote')} > 0) and on() ({zero_if_absent(rate('disagg', 'prompt_tokens', {'source': 'kv_transfer'}))} == 0) and on() "
              f"{computed_not_cached('disagg', 'local_compute', 'prefix_cache')}", "5m",
              "The router sends prefills to prefill workers, yet no prompt token's KV arrived by transfer: the decode side recomputes them.", "disagg",
              {f'{counter}{{route="remote",reason="remote"}}': "0+60x20", 'disagg_prompt_tokens_total{source="local_compute"}': "0+6000x20"},
              {f'{counter}{{route="remote",reason="remote"}}': "0+60x20", 'disagg_prompt_tokens_total{source="kv_transfer"}': "0+6000x20"}),
        Alert("DisaggRemoteRoutedWithoutEngineKV", "DG509", "critical", f"({req(route='remote')} > 0) and on() {engine_without_external_kv()}", "5m",
              "The router sends prefills to prefill workers, yet its vLLM engines report no prompt token received by KV transfer: the decode side recomputes them.", "disagg",
              {f'{counter}{{route="remote",reason="remote"}}': "0+60x20", **_VLLM_RECOMPUTING},
              {f'{counter}{{route="remote",reason="remote"}}': "0+60x20", **_VLLM_TRANSFERRING}),
        Alert("DisaggKVTransferStuck", "DG506", "critical",
              f"(max({WORKER['kv_pending'].exposed}) > 0) and on() "
              f"({zero_if_absent(rate('disagg', 'kv_bytes'))} == 0)", "2m",
              "Prefilled KV waits to be read while no KV byte moves: transfers are stuck.", "disagg",
              {'disagg_engine_kv_pending{worker_id="prefill-0",role="prefill"}': "4x20", "disagg_kv_transfer_bytes_total": "100x20"},
              {'disagg_engine_kv_pending{worker_id="prefill-0",role="prefill"}': "4x20", "disagg_kv_transfer_bytes_total": "0+1000000x20"}),
        Alert("DisaggKVTransferFailingSilently", "DG503", "warning",
              f"({rate('disagg', 'kv_failures')} > 0) and on() ({zero_if_absent(rate('disagg', 'errors', {'code': '5..'}))} == 0)", "5m",
              "KV transfers fail while clients see no error: each failure is a silent local prefill.", "disagg",
              {'disagg_kv_transfer_failures_total{reason="checksum"}': "0+5x20"}, {'disagg_kv_transfer_failures_total{reason="checksum"}': "0x20"}),
        Alert("DisaggPrefillFallbackRising", "DG502", "warning",
              f"{zero_if_absent(req(route='local', reason='queue_full|prefill_failed|kv_transfer_failed'))} / {req()} > 0.2", "10m",
              "More than 20% of requests fell back to a local prefill (queue full, prefill or KV transfer failed).", "disagg",
              {f'{counter}{{route="local",reason="queue_full"}}': "0+30x20", f'{counter}{{route="remote",reason="remote"}}': "0+60x20"},
              {f'{counter}{{route="local",reason="queue_full"}}': "0+1x20", f'{counter}{{route="remote",reason="remote"}}': "0+60x20"}),
        Alert("DisaggWorkerDown", "DG504", "critical", f"min by (worker_id, role) ({series('disagg', 'worker_up')[0]}) == 0", "1m",
              "A worker fails its health checks.", "disagg",
              {'disagg_worker_up{worker_id="prefill-0",role="prefill"}': "0x20"}, {'disagg_worker_up{worker_id="prefill-0",role="prefill"}': "1x20"}),
    ]


def _vllm() -> list[Alert]:
    tokens = lambda src: rate("vllm", "prompt_tokens", {"source": src})  # noqa: E731  (the alias renames sources; the exposed label is vLLM's)
    return [
        Alert("VllmKVTransferFailing", "DG503", "warning", f"{rate('vllm', 'kv_failures')} > 0", "5m",
              "vLLM's NIXL connector reports failed KV transfers; each is recomputed locally (or fails, per kv_load_failure_policy).", "vllm",
              {"vllm:nixl_num_failed_transfers_total": "0+3x20"}, {"vllm:nixl_num_failed_transfers_total": "0x20"}),
        Alert("VllmKVExpiredUnread", "DG503", "warning", f"{rate('vllm', 'kv_expired')} > 0", "5m",
              "Prefilled KV expired before the decode side read it: the decode side did the prefill again.", "vllm",
              {"vllm:nixl_num_kv_expired_reqs_total": "0+2x20"}, {"vllm:nixl_num_kv_expired_reqs_total": "0x20"}),
        Alert("VllmKVReceiveFailing", "DG503", "warning", f"{rate('vllm', 'kv_recv_failures')} > 0", "5m",
              "vLLM's MooncakeConnector reports failed KV receives on the decode side.", "vllm",
              {"vllm:mooncake_num_failed_recvs_total": "0+2x20"}, {"vllm:mooncake_num_failed_recvs_total": "0x20"}),
        Alert("VllmKVReadAfterExpiry", "DG503", "critical", f"{rate('vllm', 'kv_notif_after_expiry')} > 0", "5m",
              "NIXL transfers completed after their prefilled KV had expired: the blocks may have been reused while read, so answers can be wrong with HTTP 200.", "vllm",
              {"vllm:nixl_num_notifications_after_expiry_total": "0+1x20"}, {"vllm:nixl_num_notifications_after_expiry_total": "0x20"}),
        Alert("VllmKVFetchStalled", "DG506", "critical",
              f"(sum({series('vllm', 'kv_fetch', {'stage': 'in_progress'})[0]}) > 0) and on() "
              f"({zero_if_absent(tokens('external_kv_transfer'))} == 0)", "2m",
              "A decode engine has KV transfers in progress while no prompt token arrives by KV transfer: the transfers are stalled.", "vllm",
              {'vllm:num_requests_kv_fetch_by_stage{stage="in_progress"}': "3x20", 'vllm:prompt_tokens_by_source_total{source="external_kv_transfer"}': "5000x20"},
              {'vllm:num_requests_kv_fetch_by_stage{stage="in_progress"}': "3x20", 'vllm:prompt_tokens_by_source_total{source="external_kv_transfer"}': "0+5000x20"}),
        Alert("VllmNoExternalKV", "DG501", "warning",
              f"({tokens('local_compute')} > 0) and on() ({zero_if_absent(tokens('external_kv_transfer'))} == 0) and on() "
              f"(count({series('vllm', 'kv_failures')[0]}) > 0)", "10m",
              "An engine with a NIXL connector computes prompts itself and receives no KV by transfer: no remote prefill reaches it.", "vllm",
              {'vllm:prompt_tokens_by_source_total{source="local_compute"}': "0+5000x20", "vllm:nixl_num_failed_transfers_total": "0x20"},
              {'vllm:prompt_tokens_by_source_total{source="local_compute"}': "0+5x20", 'vllm:prompt_tokens_by_source_total{source="external_kv_transfer"}': "0+5000x20",
               "vllm:nixl_num_failed_transfers_total": "0x20"}),
    ]


def _dynamo() -> list[Alert]:
    adm = lambda kind: rate("dynamo", f"{kind}_admissions")  # noqa: E731
    return [
        Alert("DynamoPrefillRouterIdle", "DG501", "critical", f"({adm('decode')} > 0) and on() ({zero_if_absent(adm('prefill'))} == 0)", "5m",
              "Dynamo's frontend admits requests to decode workers and none to prefill workers: its prefill router never engages.", "dynamo",
              {'dynamo_frontend_router_admission_received_total{worker_type="decode"}': "0+60x20",
               'dynamo_frontend_router_admission_received_total{worker_type="prefill"}': "0x20"},
              {'dynamo_frontend_router_admission_received_total{worker_type="decode"}': "0+60x20",
               'dynamo_frontend_router_admission_received_total{worker_type="prefill"}': "0+60x20"}),
        Alert("DynamoPrefillWithoutExternalKV", "DG509", "critical", f"({adm('prefill')} > 0) and on() {engine_without_external_kv()}", "5m",
              "Dynamo admits requests to prefill workers, yet the vLLM engines receive no prompt token's KV by transfer and compute them locally.", "dynamo",
              {'dynamo_frontend_router_admission_received_total{worker_type="prefill"}': "0+60x20", **_VLLM_RECOMPUTING},
              {'dynamo_frontend_router_admission_received_total{worker_type="prefill"}': "0+60x20", **_VLLM_TRANSFERRING}),
    ]


def engine_without_external_kv() -> str:
    """vLLM engines that compute prompts and receive none by KV transfer, with the by-source series present (an engine
    without it says nothing: unknown, not zero)."""
    tokens = lambda src: rate("vllm", "prompt_tokens", {"source": src})  # noqa: E731
    return (f"({tokens('local_compute')} > 0) and on() ({tokens('external_kv_transfer')} == 0) and on() "
            f"(count({series('vllm', 'prompt_tokens', {'source': 'external_kv_transfer'})[0]}) > 0) and on() "
            f"{computed_not_cached('vllm', 'local_compute', 'local_cache_hit')}")


def computed_not_cached(system: str, computed: str, cached: str) -> str:
    """The engines computed at least twice the prompt tokens they read from their prefix caches (DG509's
    CACHE_FACTOR): a decode engine holding a repeated prompt cached loads no remote KV, and that is no contradiction."""
    from ..rules.live._signals import CACHE_FACTOR

    tokens = lambda src: rate(system, "prompt_tokens", {"source": src})  # noqa: E731
    return f"({tokens(computed)} >= {CACHE_FACTOR:g} * {zero_if_absent(tokens(cached))})"


_VLLM_RECOMPUTING = {'vllm:prompt_tokens_by_source_total{source="local_compute"}': "0+6000x20", 'vllm:prompt_tokens_by_source_total{source="external_kv_transfer"}': "0x20"}
_VLLM_CACHED = {'vllm:prompt_tokens_by_source_total{source="local_compute"}': "0+3000x20", 'vllm:prompt_tokens_by_source_total{source="local_cache_hit"}': "0+2900x20",
                'vllm:prompt_tokens_by_source_total{source="external_kv_transfer"}': "0x20"}  # a repeated prompt held in the decode engine's prefix cache
_VLLM_TRANSFERRING = {'vllm:prompt_tokens_by_source_total{source="local_compute"}': "0+60x20", 'vllm:prompt_tokens_by_source_total{source="external_kv_transfer"}': "0+6000x20"}


def _llmd() -> list[Alert]:
    prefill = rate("llm-d", "pd_decisions", {"decision_type": "prefill-decode|encode-prefill-decode"})
    counter = "llm_d_epp_disagg_decision_total"
    return [
        Alert("LlmdPrefillDecodeWithoutExternalKV", "DG509", "critical", f"({prefill} > 0) and on() {engine_without_external_kv()}", "5m",
              "llm-d's router decides prefill-decode, yet the vLLM engines receive no prompt token's KV by transfer and compute them locally.", "llm-d",
              {f'{counter}{{decision_type="prefill-decode"}}': "0+60x20", **_VLLM_RECOMPUTING},
              {f'{counter}{{decision_type="prefill-decode"}}': "0+60x20", **_VLLM_TRANSFERRING},
              ({f'{counter}{{decision_type="prefill-decode"}}': "0+60x20", **_VLLM_CACHED},)),
    ]


def _sglang() -> list[Alert]:
    return [
        Alert("SglangKVTransferFailing", "DG503", "warning", f"{rate('sglang', 'kv_failures')} > 0", "5m",
              "SGLang reports failed KV transfers between prefill and decode servers.", "sglang",
              {"sglang:num_transfer_failed_reqs_total": "0+3x20"}, {"sglang:num_transfer_failed_reqs_total": "0x20"}),
        Alert("SglangBootstrapFailing", "DG503", "warning", f"{rate('sglang', 'bootstrap_failures')} > 0", "5m",
              "SGLang requests fail the prefill/decode bootstrap (the handshake before any KV moves).", "sglang",
              {"sglang:num_bootstrap_failed_reqs_total": "0+3x20"}, {"sglang:num_bootstrap_failed_reqs_total": "0x20"}),
    ]


BUILDERS = {"disagg": _disagg, "vllm": _vllm, "dynamo": _dynamo, "sglang": _sglang, "llm-d": _llmd}


def alerts(systems: list[str] | None = None) -> list[Alert]:
    return [a for s in (systems or list(BUILDERS)) if s in BUILDERS for a in BUILDERS[s]()]


def rule_groups(systems: list[str] | None = None) -> dict:
    """Plain Prometheus rule-group YAML (what `promtool check rules` reads), one group per system."""
    groups = []
    for system in systems or list(BUILDERS):
        rules = [a.rule() for a in alerts([system])]
        if rules:
            groups.append({"name": f"disagg-doctor-{system}", "rules": rules})
    return {"groups": groups}


def prometheus_rule(systems: list[str] | None = None, name: str = "disagg-doctor-alerts") -> dict:
    """The same groups as a prometheus-operator PrometheusRule (monitoring.coreos.com/v1)."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "disagg"}},
            "spec": rule_groups(systems)}


def alert_tests(rule_file: str, systems: list[str] | None = None) -> dict:
    """promtool unit tests (`promtool test rules`): per alert, its failure's series fire it and a healthy
    deployment's do not. Series advance one sample a minute for 20 minutes; alerts are checked at 15 minutes."""
    tests = []
    for a in alerts(systems):
        for inputs, firing in ((a.fires_on, True), (a.quiet_on, False), *((q, False) for q in a.quiet_also)):
            exp = []
            if firing:
                labels = {"severity": a.severity, "dg_code": a.code, "system": a.system}
                if a.name == "DisaggWorkerDown":
                    labels |= {"worker_id": "prefill-0", "role": "prefill"}
                exp = [{"exp_labels": labels, "exp_annotations": a.rule()["annotations"]}]
            tests.append({"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in inputs.items()],
                          "alert_rule_test": [{"eval_time": "15m", "alertname": a.name, "exp_alerts": exp}]})
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}
