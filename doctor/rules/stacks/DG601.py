from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule

_DYNAMO = ("dynamo.vllm", "dynamo.sglang", "dynamo.trtllm")


def _pairs_by_model(p) -> frozenset[str]:
    """Releases in which the frontend pairs this prefill worker with decode workers by the model name they register.
    From 1.0.0 for every dynamo.* worker (per model and namespace, ai-dynamo/dynamo PR #6054, see _across_files). The
    frontend keyed its prefill router by model name before that too (lib/llm/src/discovery/watcher.rs at
    zxue2/dynamo@e20adb44, 0.6.1: register_prefill_router(card.name())), and dynamo.trtllm's prefill worker registers
    through it from 0.7.0 (ai-dynamo wheels 0.7.0, 0.8.1, 0.9.1 dynamo/trtllm/main.py: ModelType.Prefill, register_llm
    under --served-model-name, 'frontend detects their role via ModelType'); in 0.4-0.6 the decode worker called the
    prefill worker's endpoint itself (fact dynamo.trtllm.strategy_chain), which no model name enters."""
    return knowledge.versions_between("dynamo", "0.7.0" if p.program == "dynamo.trtllm" else "1.0.0", None)


class DG601(Rule):
    """## What it does
    Reports Dynamo 1.x prefill and decode workers in one file that register in different Dynamo namespaces, or (in
    releases where the frontend pairs them by model, 1.0 on) under different served model names. Across two files
    it reports a pair linked by model whose served names differ, and a prefill and decode worker that everything
    else the files state makes one deployment (the run's only frontend and Dynamo workers, one model and served
    name, one etcd/NATS endpoint written on both sides) but that register in different namespaces (1.0 on).

    In a DynamoGraphDeployment the operator decides the namespace: `globalDynamoNamespace: true` puts a component in
    `dynamo`, every other one in `{namespace}-{graph name}` (ComputeDynamoNamespace in ai-dynamo/dynamo
    deploy/operator/api/v1alpha1), so prefill and decode components that differ there never meet (an error).
    Components with different `dynamoNamespace` values are a warning: operators that read that field refuse the
    graph ("namespace mismatch for component", deploy/cloud/operator/internal/dynamo/graph.go at
    ai-dynamo/dynamo@010c68fa), newer ones ignore it.

    ## Why is this bad?
    Workers find each other through discovery under their namespace and model name. A prefill worker registered
    elsewhere is never used: Dynamo 1.6.1 answered every request with 503 "not ready" here (a test run with its
    mock engine), and releases that fall back to aggregated serving leave the prefill GPUs idle.

    ## Example
    ```bash
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen --disaggregation-mode decode
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen-prefill --disaggregation-mode prefill
    ```

    ## Use instead
    ```bash
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen --disaggregation-mode decode
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen --disaggregation-mode prefill
    ```
    """

    also = {Severity.WARNING: "DGD components with different `dynamoNamespace` values (refused by operators that read the field, ignored by newer ones)"}
    code = "DG601"
    name = "dynamo-prefill-decode-unpaired"
    severity = Severity.ERROR
    on_roles = True

    def check(self, ctx):
        dyn = [w for w in ctx.deployment.workers if w.program in _DYNAMO and w.role in ("prefill", "decode")]
        decode = [w for w in dyn if w.role == "decode"]
        for p in (w for w in dyn if w.role == "prefill"):
            by_model = _pairs_by_model(p)
            for d in decode[:1]:
                pn, dn = p.known("served_model_name") or p.known("model"), d.known("served_model_name") or d.known("model")
                if pn and dn and str(pn) != str(dn) and knowledge.verdict(p.target, "dynamo", by_model) is True:
                    where = p.where("served_model_name") if "served_model_name" in p.settings else p.where("model")
                    yield ctx.finding(self, where, f"{p.name} (prefill) registers as {pn!r} but {d.name} (decode) as {dn!r}: the frontend never pairs them",
                                      worker=p, related=(ctx.related(d, d.where("served_model_name"), "the decode worker"),), assumed=ctx.assumed(p), roles=(p, d),
                                      fix=Fix("use the same --served-model-name on prefill and decode workers"))
                yield from self._namespaces(ctx, p, d)
        yield from self._across_files(ctx)
        for pair in ctx.pairs:  # linked across files by their model (pairing.across): the name they register under
            p, d = pair.prefill, pair.decode
            if not pair.cross_file or p.program not in _DYNAMO or d.program not in _DYNAMO:
                continue
            ps, ds = p.settings.get("served_model_name"), d.settings.get("served_model_name")
            if ps is None or ds is None or not ps.known or not ds.known or str(ps.value) == str(ds.value):
                continue
            if any(knowledge.verdict(w.target, "dynamo", by_model) is not True for w in (p, d)):
                continue
            yield ctx.pair_finding(self, pair, p, ps.span, f"{p.name} (prefill) registers as {ps.value!r} but {d.name} (decode, {d.path}) as {ds.value!r}: "
                                   "the frontend pairs prefill and decode by model, so it never pairs them", other_key="served_model_name",
                                   assumed=ctx.assumed(p), fix=Fix("use the same --served-model-name on prefill and decode workers"))

    def _across_files(self, ctx):
        """A prefill worker here and a decode worker in another file of the run that pairing.splits shows to be one
        deployment (the only Dynamo frontend and workers of the run, one model, one etcd/NATS) but that register in
        different namespaces. From 1.0.0 the frontend activates a decode WorkerSet's prefill router only with prefill
        workers of the same (model, namespace) ("prefill router activated by same-namespace prefill workers",
        lib/llm/src/discovery/model_manager.rs, ai-dynamo/dynamo PR #6054 = cb55766c4, merged before the 1.0.0
        version bump db88c9530; still so in watcher.rs at 2a6da14c8, 1.5.0 main: 'Only a typed Decode endpoint
        participates in the namespace-level P/D rendezvous'). Before it (0.6.1, watcher.rs at zxue2/dynamo@e20adb44)
        the frontend activated the prefill router by model name alone: pairing.splits keeps to 1.0.0 on."""
        for split in ctx.apart:
            p, d = split.prefill, split.decode
            if p.path != ctx.path:
                continue  # reported once, from the prefill's file (and shown at the decode's end too)
            ps, ds = p.settings[split.key], d.settings[split.key]
            said = f"is in Dynamo namespace {ps.value!r} but {d.name} (decode, {d.path}) in {ds.value!r}: discovery is per namespace, so they never meet"
            fix = Fix("run prefill and decode workers in the same Dynamo namespace (DYN_NAMESPACE)")
            yield ctx.finding(self, ps.span, f"{p.name} (prefill) {said} ({split.why})", worker=p,
                              related=(ctx.related(d, ds.span, f"{d.name} ({d.role})"),), roles=(p, d), assumed=ctx.assumed(p), fix=fix)

    def _namespaces(self, ctx, p, d):
        ps, ds = p.settings.get("namespace"), d.settings.get("namespace")
        if ps is not None and ds is not None and ps.known and ds.known and str(ps.value) != str(ds.value):
            yield ctx.finding(self, ps.span, f"{p.name} (prefill) is in namespace {ps.value!r} but {d.name} (decode) in {ds.value!r}: they never meet",
                              worker=p, related=(ctx.related(d, ds.span, "the decode worker's namespace"),),
                              roles=(p, d), fix=Fix("run prefill and decode workers in the same Dynamo namespace"))
            return
        if ps is None and ds is None and p.namespace and d.namespace and p.namespace != d.namespace and ("dgd_namespace" in p.settings or "dgd_namespace" in d.settings):
            # A DGD: the operator puts a component with `globalDynamoNamespace: true` in "dynamo", the others in
            # "{k8s namespace}-{DGD name}" (ComputeDynamoNamespace, see schemas/readers/dgd.py).
            at, other = (p, d) if "dgd_namespace" in p.settings else (d, p)
            yield ctx.finding(self, at.where("dgd_namespace"), f"{p.name} (prefill) registers in Dynamo namespace {p.namespace!r} but {d.name} (decode) in "
                              f"{d.namespace!r} (globalDynamoNamespace differs): discovery is per namespace, so they never find each other",
                              worker=at, related=(ctx.related(other, other.where("dgd_namespace"), f"{other.name} ({other.role})"),),
                              roles=(p, d), fix=Fix("set globalDynamoNamespace the same way on the prefill and decode components"))
            return
        pf, df = p.settings.get("dynamo_namespace_field"), d.settings.get("dynamo_namespace_field")
        if pf is None and df is None:
            return
        if pf is None or df is None or str(pf.value) == str(df.value) or not (pf.written or df.written):
            return
        at, other = (p, d) if pf.written else (d, p)
        said = {w.name: (repr(s.value) if s.written else f"unset ({s.value!r})") for w, s in ((p, pf), (d, df))}
        yield ctx.finding(self, at.where("dynamo_namespace_field"), f"{p.name} (prefill) has dynamoNamespace {said[p.name]} but {d.name} (decode) "
                          f"{said[d.name]}: operators that read dynamoNamespace refuse the whole graph (\"namespace mismatch for component\"); "
                          "newer ones ignore the field and put every component in one namespace", worker=at, severity=Severity.WARNING,
                          related=(ctx.related(other, other.where("dynamo_namespace_field"), f"{other.name} ({other.role})"),), roles=(p, d),
                          fix=Fix("give every component the same dynamoNamespace, or remove it (newer operators derive the namespace from the DGD name)"))
