from __future__ import annotations

from disagg.schemas import knowledge, pd_sidecar
from disagg.schemas.knowledge import version_key

from ...finding import Fix, Severity
from ...registry import Rule
from .._spelling import near_miss


class DG622(Rule):
    """## What it does
    Reports llm-d's P/D routing sidecar (`/app/pd-sidecar`) started with a `--kv-connector` (or, up to 0.6, and where
    `--kv-connector` is not given, `--connector`) that none of its candidate releases accepts. The accepted names are
    read from each llm-d-router release's source (the `supportedConnectors` / `supportedKVConnectors` list it checks
    at start): `nixlv2` and `sglang` in every release from 0.4.0 to 0.10.0, `lmcache` to 0.5.1, `shared-storage` from
    0.6.0, `mooncake` from 0.9.0, `offloading` from 0.10.0. A flag that only some releases define (`--kv-connector`
    from 0.7) narrows the candidates; a name some candidate accepts and another does not is left alone.

    ## Why is this bad?
    The sidecar checks the name before it listens: from 0.7 `Complete()` returns "--kv-connector must be one of: ..."
    and the process exits; up to 0.6 `main` logs the same and returns. The decode pod's entry point never comes up,
    so the pod is never ready and no request reaches its vLLM. The name looks plausible to a person (`nixl` for the
    removed first NIXL protocol, a vLLM connector class name such as `NixlConnector`). An error where the file names
    the sidecar's release, else a warning: a release newer than those read may accept more.

    ## Example
    ```yaml
    initContainers:
      - name: routing-proxy
        restartPolicy: Always
        command: [/app/pd-sidecar, --port=8000, --vllm-port=8001, --kv-connector=nixl]
    ```

    ## Use instead
    ```yaml
    initContainers:
      - name: routing-proxy
        restartPolicy: Always
        command: [/app/pd-sidecar, --port=8000, --vllm-port=8001, --kv-connector=nixlv2]
    ```
    """

    code = "DG622"
    name = "llm-d-sidecar-connector-rejected"
    severity = Severity.WARNING
    also = {Severity.ERROR: "when the file names the sidecar's release"}

    def check(self, ctx):
        read = frozenset(knowledge.sidecar_connector_releases_read())
        for w in ctx.deployment.workers:
            s = w.settings.get("sidecar_kv_connector")
            if w.program != pd_sidecar.PROGRAM or s is None or not s.known or not isinstance(s.value, str) or s.span is None:
                continue
            cands = w.target.releases("llm-d-router") & read
            value = s.value.strip()
            if not cands or not value or knowledge.sidecar_connector_in(value) & cands:
                continue
            accepted = sorted(knowledge.sidecar_connectors(cands))
            shown = sorted(cands, key=version_key)
            span = shown[0] if len(shown) == 1 else f"{shown[0]}..{shown[-1]}"
            match = near_miss(value, frozenset(accepted))
            hint = f"; did you mean {match!r}?" if match else ""
            named = w.target.named("llm-d-router")
            yield ctx.finding(self, s.span, f"{w.name}: {s.origin} {value!r} is not a connector the routing sidecar accepts "
                              f"(llm-d-router {span}: {', '.join(accepted)}); it exits at start, so the pod never becomes ready{hint}",
                              worker=w, severity=Severity.ERROR if named else Severity.WARNING,
                              fix=Fix(f"set {s.origin} to one of {', '.join(accepted)}"))
