from __future__ import annotations

from disagg.schemas import knowledge
from disagg.schemas.engines import role_from_words
from disagg.schemas.roles import flags_hidden, has_role_flag

from ...finding import Fix, Severity
from ...registry import Rule

# programs whose own flag decides whether they serve prefill or decode -> (system, fact) when the fact is sourced
_FLAG_DECIDES = {"dynamo.vllm": ("dynamo", "dynamo.vllm.role_by_flag"), "sglang": ("sglang", "sglang.role_by_flag"), "dynamo.sglang": ("dynamo", "dynamo.sglang.role_by_flag"),
                 "dynamo.trtllm": ("dynamo", "dynamo.trtllm.role_by_flag")}
# dynamo.sglang maps SGLang's --disaggregation-mode null to its AGGREGATED serving mode: it neither asks a prefill worker
# nor waits for KV (ai-dynamo wheels 0.4.1, 0.5.0, 0.6.1, 0.7.0, 0.8.1, 0.9.1, 1.0.0, 1.2.1, 1.4.0, 1.6.1:
# dynamo/sglang/args.py _set_serving_strategy, `disaggregation_mode == "null"` -> DisaggregationMode.AGGREGATED)
_DYNAMO_SGLANG_NULL = "aggregated (dynamo.sglang serves --disaggregation-mode null in its AGGREGATED mode, computing every prompt itself)"
_SYSTEM_READ = ("flag", "connector", "router", "default")  # a role that the engine itself, its connector or its router decides


def _runs_as(w) -> str:
    """What the engine runs as, from its own flags."""
    if has_role_flag(w):
        return w.role if w.role_from == "flag" else str(w.known("disaggregation_mode", "?"))
    if w.program == "dynamo.vllm":
        return "the backend component (decode, or aggregated from Dynamo 1.3)"
    if w.program == "dynamo.sglang":
        # 1.2 on: the decode handler; 0.4.1-1.1: SGLang's null mode, the aggregated handler (dynamo.sglang.role_by_flag)
        return "decode (aggregated before Dynamo 1.2)" if w.target.releases("dynamo") & knowledge.versions_between("dynamo", None, "1.1.1") else "decode"
    return "a plain server (--disaggregation-mode null: it neither sends nor receives KV)"


def _sourced(w) -> bool:
    entry = _FLAG_DECIDES.get(w.program)
    if entry is None:
        return False
    system, fact_id = entry
    holds = knowledge.fact(fact_id).releases
    cands = w.target.releases(system)
    shipped = knowledge.program_releases(system, w.program) if system == "dynamo" else None
    if shipped is not None:
        cands = cands & shipped  # where the module does not exist the worker fails at start (DG603), not this
    return bool(cands) and cands <= holds


class DG107(Rule):
    """## What it does
    Reports a worker that is called prefill (or decode) while what it runs with says otherwise: a Dynamo service,
    container, section or variable named prefill whose `python -m dynamo.vllm` has neither `--disaggregation-mode
    prefill` nor `--is-prefill-worker`; a `python -m dynamo.trtllm` or `dynamo.sglang` named prefill whose
    `--disaggregation-mode` says decode or null; an SGLang server named decode without `--disaggregation-mode decode`
    (a `dynamo.sglang` one whose `--disaggregation-mode null` makes it aggregated); a `subComponentType: prefill` over an
    unflagged worker, and a DGD service whose `subComponentType` says one role while its engine's flag says another
    (the operator labels and the planner scales the service by the field; the engine serves by its flag); and an SGLang server that the PD router
    (`sglang_router.launch_router --pd-disaggregation --prefill URL --decode URL`, or with `--service-discovery` the pods
    whose labels its `--prefill-selector` / `--decode-selector` match) sends prefill or decode traffic to
    while its own `--disaggregation-mode` is something else (null by default), or one server URL that the PD router
    is given both as a `--prefill` and as a `--decode` (whatever mode that server runs in, one half goes wrong).

    ## Why is this bad?
    The engine decides its role from its own flags, never from a name: `dynamo.vllm` without a prefill flag registers
    as the backend component (components/src/dynamo/vllm/args.py), an SGLang server without `--disaggregation-mode`
    is a plain server. A deployment whose only prefill workers are prefill by name has no prefill worker: prefill
    traffic is zero and the GPUs given to "prefill" serve as decode or aggregated workers. Behind SGLang's PD router
    it is worse: the router hands the request to a server that is not in the mode it assumes, so the other side waits
    for a KV transfer that never happens.

    ## Example
    ```bash
    # prefill worker
    python -m dynamo.vllm --model m --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}' &
    python -m dynamo.vllm --model m --disaggregation-mode decode --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}' &
    ```

    ## Use instead
    ```bash
    # prefill worker
    python -m dynamo.vllm --model m --disaggregation-mode prefill --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}' &
    python -m dynamo.vllm --model m --disaggregation-mode decode --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}' &
    ```
    """

    code = "DG107"
    name = "role-name-contradicts-flags"
    severity = Severity.WARNING
    also = {
        Severity.ERROR: "a PD router sends traffic to an SGLang server that is not in that mode",
        Severity.INFO: "when other workers do serve that role, the release's rule is not sourced, or arguments set at run time may carry the flag",
    }

    def check(self, ctx):
        yield from self._one_url_both_roles(ctx)
        engines = ctx.deployment.engines()
        serving = {role: [w for w in engines if w.role == role and w.role_from in _SYSTEM_READ] for role in ("prefill", "decode")}
        for w in engines:
            routed = w.settings.get("routed_as")
            if routed is not None and w.engine == "sglang" and w.program in _FLAG_DECIDES:
                mode = w.settings.get("disaggregation_mode")
                own = w.known("disaggregation_mode") if has_role_flag(w) else None
                # arguments set at run time after the written mode may carry another one (argparse keeps the last)
                hidden = flags_hidden(w) if own is None or _after(w.settings.get("opaque_args"), mode) else None
                if own != routed.value and not (mode is not None and not mode.known):
                    runs = f"runs in {own} mode" if own else "has no --disaggregation-mode, so it " + _runs_as(w).replace("a plain", "is a plain", 1)
                    waits = "the decode server waits for KV it never receives" if routed.value == "prefill" else \
                        "it prefills every request again itself while the prefill server's KV transfer waits for a receiver that never comes"
                    waits += f" (unless {hidden} and carries the flag)" if hidden else ""
                    yield ctx.finding(self, w.where("disaggregation_mode"), f"{w.name}: {routed.origin} sends it {routed.value} traffic but it {runs}: {waits}",
                                      worker=w, severity=Severity.ERROR if _sourced(w) and not hidden else Severity.INFO, assumed=ctx.assumed(w, "sglang"),
                                      related=(ctx.related(w, routed.span, "where the router picks it"),),
                                      fix=Fix(f"add --disaggregation-mode {routed.value} to {w.name}'s command"))
                continue
            said, why, by_field, by_launcher = self._said(w)
            if said is None or w.program not in _FLAG_DECIDES:
                continue
            runs = _runs_as(w)
            if runs == said or (said == "decode" and w.program != "sglang" and not by_field and not by_launcher
                                and (not has_role_flag(w) or (w.role == "prefill" and role_from_words(w.name) != "decode"))):
                # an unflagged Dynamo worker is the decode side (DG604 says when it registers as aggregated); a flagged
                # prefill that words nearby call decode is left to the name-free rules (comments say both roles), unless
                # its own name does (a DGD service called `decode` that runs --disaggregation-mode prefill)
                continue
            if w.program == "dynamo.sglang" and w.known("disaggregation_mode") == "null":
                runs = _DYNAMO_SGLANG_NULL
            elif runs == "null":
                runs = "a plain server (--disaggregation-mode null: it neither sends nor receives KV)"
            others = [x for x in serving[said] if x is not w]
            zero = f"no worker serves {said}: {said} traffic will be zero" if not others else \
                f"{', '.join(x.name for x in others[:2])} {'serves' if len(others) == 1 else 'serve'} {said}; this one does not"
            if by_field:
                zero += (f"; Dynamo's operator labels its pods {said} and its planner scales it as {said} capacity "
                         "(wxsms/dynamo@2a6da14, a fork of ai-dynamo/dynamo at 1.5: deploy/operator/internal/dynamo/graph.go:2888-2889 sets the "
                         "nvidia.com/dynamo-sub-component-type label from it; components/src/dynamo/planner/connectors/kubernetes.py:178 picks the "
                         "service to scale by it)")
            hidden = flags_hidden(w)
            # the other side is there (so this is a P/D deployment that misses one side), by what the system reads
            other = "decode" if said == "prefill" else "prefill"
            counterpart = any(x is not w and x.role == other and x.role_from in _SYSTEM_READ + ("field",) for x in engines) or \
                (said == "prefill" and any(x.role in ("frontend", "router", "proxy") for x in ctx.deployment.workers))
            sev = Severity.WARNING if (not others and counterpart or by_field) and _sourced(w) and not hidden else Severity.INFO
            if hidden:
                zero += f" (unless {hidden} and carries the flag)"
            system = _FLAG_DECIDES[w.program][0] if _FLAG_DECIDES[w.program] else "dynamo"
            yield ctx.finding(self, w.where("disaggregation_mode"), f"{w.name} is {said} by {why}, but runs as {runs}: {zero}",
                              worker=w, severity=sev, assumed=ctx.assumed(w, system),
                              fix=Fix(f"add --disaggregation-mode {said} to its command, or name it for what it runs as"))

    def _one_url_both_roles(self, ctx):
        """SGLang's PD router given one server URL as a --prefill and a --decode: an SGLang server runs in one
        --disaggregation-mode (sglang.role_by_flag), and a decode-mode server cannot prefill (sgl-project/sglang#14284),
        so whatever that server's mode, one of the two halves of each request it is picked for goes to a server of the
        other mode. What the router's own line states decides it; the server may be in another file."""
        for router in ctx.deployment.workers:
            if router.program != "sglang-router":
                continue
            urls = {}
            for key in ("router_prefill", "router_decode"):
                s = router.settings.get(key)
                urls[key] = [(u, span) for u, span in (s.value if s is not None and isinstance(s.value, list) else []) if "$" not in u]
            decode = {_same_server(u): u for u, _ in urls["router_decode"]}
            for url, span in urls["router_prefill"]:
                twin = decode.get(_same_server(url))
                if twin is None:
                    continue
                yield ctx.finding(self, span, f"{router.name} sends prefill traffic (--prefill {url}) and decode traffic (--decode {twin}) to one server: an SGLang "
                                  "server runs in a single --disaggregation-mode and a decode server cannot prefill (sgl-project/sglang#14284), so one half of each "
                                  "request it is picked for goes to a server of the other mode and waits for a KV transfer that never happens",
                                  worker=router, severity=Severity.ERROR, assumed=ctx.assumed(router, "sglang"),
                                  fix=Fix("give --prefill the prefill server's URL and --decode the decode server's URL"))

    @staticmethod
    def _said(w) -> tuple[str | None, str, bool, bool]:
        """The role a name, a CRD field or a launcher gives the worker, when its own flags disagree or say nothing;
        whether a field that a system reads said it with the engine's own flag saying otherwise (a DGD's
        subComponentType); and whether its launcher started it as that role's worker (srtctl's section: what runs,
        not a name)."""
        if w.role in ("prefill", "decode") and w.role_from in ("name", "field") and not has_role_flag(w):
            return w.role, ("its name" if w.role_from == "name" else "its manifest") + f" ({w.role_why})", False, False
        sub = w.settings.get("sub_component_type")
        if sub is not None and w.role_from == "flag" and sub.value != w.role and w.role in ("prefill", "decode", "aggregated"):
            return sub.value, f"its manifest (subComponentType {sub.value})", True, False
        launched = w.settings.get("launched_as")  # the launcher starts it as that role's worker (srtctl's prefill endpoint)
        if launched is not None and w.role_from == "flag" and launched.value != w.role and w.role in ("prefill", "decode", "aggregated"):
            return launched.value, f"its launcher ({launched.origin})", False, True
        named = w.settings.get("named_as")
        if named is not None and w.role_from == "flag" and named.value != w.role and w.role in ("prefill", "decode", "aggregated"):
            return named.value, f"its name ({named.origin})", False, False
        return None, "", False, False


def _after(a, b) -> bool:
    """Setting `a` is written after setting `b` (both located)."""
    return a is not None and b is not None and a.span is not None and b.span is not None and \
        (a.span.line, a.span.column) > (b.span.line, b.span.column)


def _same_server(url: str) -> str:
    """A router URL as the server it names: the scheme, a trailing slash and the host's case do not change which."""
    return url.strip().lower().split("://", 1)[-1].rstrip("/")
