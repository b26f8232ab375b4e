from __future__ import annotations

from disagg.schemas.model import is_loopback

from ...finding import Fix, Severity
from ...registry import Rule
from ._signals import increase_everywhere, rounded


class DG503(Rule):
    """## What it does
    Reports KV transfers that fail or expire in a running deployment: transfer failures
    (`disagg_kv_transfer_failures_total`, vLLM's `nixl_num_failed_transfers` or `mooncake_num_failed_transfers` and
    `mooncake_num_failed_recvs`, SGLang's transfer and bootstrap failures), remote prefills that failed
    (`prefill_failed`), prefilled KV that expired unread (vLLM's `nixl_num_kv_expired_reqs`), which means the decode
    side did the prefill again, and transfers that completed after their KV had expired (vLLM 0.32+'s
    `nixl_num_notifications_after_expiry`), whose blocks may have been reused while they were read.

    ## Why is this bad?
    Each failure costs a full prefill on the decode worker after the prefill worker already did it: twice the work,
    worse time to first token, and the prefill GPU looks busy while it helps nobody. vLLM's old
    `kv_load_failure_policy: recompute` hid this completely (vllm-project/vllm#32200).

    ## Example
    ```yaml
    VllmWorker:
      remote-prefill: true
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'   # the decode side has none
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    ```
    """

    code = "DG503"
    name = "kv-transfer-failing"
    severity = Severity.ERROR
    live = True

    def check(self, ctx):
        w = ctx.window
        if len(w.snaps) < 2:
            return
        failures = rounded({k: v for k, v in w.by_label("kv_failures", "reason").items() if v > 0})
        if not failures and w.delta("kv_failures") > 0:
            failures = {"unlabelled": round(w.delta("kv_failures"), 2)}
        reasons = w.by_label("requests", "reason")
        prefill_failed = reasons.get("prefill_failed", 0.0)
        expired = w.workers_delta("kv_expired") + w.delta("kv_expired")  # prefill workers' own, or a vLLM target's
        recv_failed = increase_everywhere(ctx, "kv_recv_failures") or 0.0  # Mooncake: the decode side's own count
        bootstrap = increase_everywhere(ctx, "bootstrap_failures") or 0.0  # SGLang: the P/D handshake
        late = increase_everywhere(ctx, "kv_notif_after_expiry") or 0.0
        if not failures and prefill_failed <= 0 and expired <= 0 and not recv_failed and not bootstrap and not late:
            return
        parts = []
        if failures:
            parts.append(f"{sum(failures.values()):.0f} KV transfer(s) failed ({', '.join(f'{k}: {v:.0f}' for k, v in failures.items())})")
        if prefill_failed:
            parts.append(f"{prefill_failed:.0f} remote prefill(s) failed")
        if recv_failed:
            parts.append(f"{recv_failed:.0f} KV receive(s) failed on the decode side")
        if bootstrap:
            parts.append(f"{bootstrap:.0f} request(s) failed the prefill/decode bootstrap")
        if expired > 0:
            parts.append(f"{expired:.0f} prefilled KV block set(s) expired unread")
        local_tokens = w.delta("prompt_tokens", source="local_compute")
        message = f"{'; '.join(parts)} in the last {w.span:.0f} s: the decode workers prefilled those prompts again" if parts else ""
        if late:
            message += ("; " if message else "") + (
                f"{late:.0f} transfer completion(s) arrived after the prefilled KV had expired in the last {w.span:.0f} s: its blocks may have been "
                "reused while the decode side read them, so answers can be wrong with HTTP 200 (the prefill side's kv_connector_extra_config.kv_lease_duration, 30 s by default in vLLM 0.34, is shorter than the transfers take)")
        fix = Fix("check both workers' KV connector settings (DG201, DG202) and the prefill workers' logs")
        extra = {}
        if failures and (stranded := kv_on_localhost(w.last.workers)):
            message += "; cause (DG208): " + "; ".join(stranded)
            fix = Fix("advertise an address the decode hosts can reach: VLLM_NIXL_SIDE_CHANNEL_HOST (or `disagg serve --advertise`) set to the prefill host's own address")
            extra["cause"] = "DG208"
        yield ctx.finding(
            self, message, path=ctx.decode_key("kv-transfer-config"), fix=fix,
            subject="kv", evidence={"kv_failures": failures, "prefill_failed": int(prefill_failed), "kv_expired": int(expired), "decode_local_prompt_tokens": int(local_tokens),
                                    **{k: int(v) for k, v in (("kv_recv_failures", recv_failed), ("bootstrap_failures", bootstrap), ("notifications_after_expiry", late)) if v}},
            confidence=0.9, **extra,
        )


def kv_on_localhost(workers) -> list[str]:
    """Prefill workers on another host than their decode workers that advertise their KV on a loopback address:
    the decode side's connection reaches itself (the static DG208's case, seen live)."""
    decode_hosts = {wv.host for wv in workers if wv.role == "decode" and wv.host}
    out = []
    for wv in workers:
        if wv.role != "prefill" or not wv.kv_address or not is_loopback(wv.kv_address) or not wv.host or is_loopback(wv.host):
            continue
        elsewhere = sorted(decode_hosts - {wv.host})
        if elsewhere:
            out.append(f"{wv.worker_id} runs at {wv.host} but advertises its KV at {wv.kv_address}, so the decode worker(s) at {', '.join(elsewhere)} connect to themselves")
    return out
