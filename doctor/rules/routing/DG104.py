from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._helpers import prefill_capacity, routing_policy, v0_router

_SCALERS = ("ScaledObject", "HorizontalPodAutoscaler", "KEDA")  # origins of a replica count an autoscaler owns


class DG104(Rule):
    """## What it does
    Reports a deployment whose prefill side cannot run a single instance. In Dynamo v0: `remote-prefill: true` on
    the decode worker with no `PrefillWorker` section, `workers: 0`, or `gpu: 0`. In every other format: prefill
    workers whose replica counts add up to 0 — `replicas: 0` on a DynamoGraphDeployment prefill service or
    component, a DisaggregatedSet prefill role, an LLMInferenceService `prefill`, a Deployment, StatefulSet or
    LeaderWorkerSet, a modelservice `prefill` block, or TensorRT-LLM's `context_servers.num_instances: 0`. Where an
    autoscaler owns the count (DGD `scalingAdapter`, `autoscaling` with a floor of 0, a Planner component, a KEDA
    ScaledObject in the same file) it is a note, and nothing when its floor is at least 1.

    ## Why is this bad?
    Requests chosen for remote prefill wait on the prefill queue for a worker that never comes. With
    `conditional-disagg: false` that is every request (a total hang); with conditional disaggregation it is
    every prompt above the threshold. With no prefill instance, the other routers hang, fail or silently fall back
    to prefilling on the decode side (Dynamo's frontend without `--enforce-disagg`, llm-d's decider before 0.10,
    llm-d-router#2427), so the deployment is not disaggregated at all.

    ## Example
    ```yaml
    VllmWorker:
      remote-prefill: true
    PrefillWorker:
      ServiceArgs: {workers: 0}
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
    PrefillWorker:
      ServiceArgs: {workers: 1}
    ```
    """

    code = "DG104"
    name = "no-prefill-worker"
    severity = Severity.ERROR
    also = {Severity.INFO: "when an autoscaler or Dynamo's Planner owns the replica count and may raise it, nothing in the file routes to a decode "
                           "side, or the system serves every request on decode when no prefill pod runs (llm-d's modelservice chart)"}
    on_roles = True

    def check(self, ctx):
        yield from self._zero_replicas(ctx)
        dec = v0_router(ctx.deployment)
        if dec is None:
            return
        policy = routing_policy(dec)
        if not policy.remote_prefill:
            return
        workers, why, _ = prefill_capacity(ctx.deployment)
        if workers or any(w.role == "prefill" for w in ctx.deployment.maybe_alongside):
            return  # a prefill worker of another config of the file may serve it: whether it runs with this one is not known
        if policy.conditional_disagg:
            impact = f"every prompt above max-local-prefill-length ({policy.max_local_prefill_length} tokens) will wait forever"
        else:
            impact = "with conditional-disagg off, every request will wait forever (a total hang)"
        yield ctx.finding(self, dec.where("remote_prefill"), f"remote-prefill is on but {why}: {impact} for a prefill worker that never comes",
                          worker=dec, fix=Fix("add a PrefillWorker with at least one worker, or turn remote-prefill off"))

    def _zero_replicas(self, ctx):
        """Formats other than Dynamo v0: the prefill workers' replica counts, as written, add up to 0."""
        dep = ctx.deployment
        if dep.format == "dynamo-v0":
            return
        pre = [w for w in dep.workers if w.role == "prefill" and (w.is_engine or w.program == "image-entrypoint") and not w.known("engine_part")]
        if not pre or any(not isinstance(w.replicas.value, int) for w in pre) or sum(w.replicas.value for w in pre) > 0:
            return
        # a zero prefill side matters where the rest is set up for disaggregation: a decode side or a router that
        # the system reads as such (a decode worker by its name alone, and nothing else, makes this a note)
        counterpart = any(x.role == "decode" and x.role_from != "name" for x in dep.workers) or \
            any(x.role in ("frontend", "router", "proxy") for x in dep.workers) or bool(dep.router)
        for w in pre:
            if w.replicas.span is None:
                continue
            routed = counterpart or any(p.prefill is w for p in ctx.linked)
            auto = w.settings.get("autoscaled")
            if auto is None and w.replicas.origin.startswith(_SCALERS):
                auto = w.replicas  # a reader that models an autoscaler's floor as the replicas it keeps (KEDA's default floor is 0)
            floor = auto.value if auto is not None else None
            if auto is not None and isinstance(floor, int) and floor > 0:
                continue  # the autoscaler keeps at least `floor` running
            field = {"num_instances": "num_instances: 0", "ServiceArgs.workers": "workers: 0", "num_replicas": "num_replicas: 0",
                     "autoscaling_config min_replicas": "min_replicas: 0"}.get(w.replicas.origin, "replicas: 0")
            if auto is not None:
                scaler = auto.origin.split(" min")[0]  # "KEDA ScaledObject", "scalingAdapter", "ScaledObject minReplicaCount ..."
                yield ctx.finding(self, w.replicas.span, f"{w.name} (prefill) has {field} and its {scaler} may scale it from there; until it does, "
                                  "no prefill instance runs", worker=w, roles=(w,), severity=Severity.INFO,
                                  fix=Fix("give the prefill side a floor of at least 1, or check that the autoscaler scales it up from zero"))
                continue
            fallback = w.settings.get("without_prefill")
            if fallback is not None:  # the system serves every request on decode when no prefill pod runs (llm-d)
                yield ctx.finding(self, w.replicas.span, f"{w.name} (prefill) has {field}: no prefill pod runs, so P/D is off and the decode "
                                  f"side prefills every request ({fallback.origin}); nothing hangs or fails, and no GPU sits idle",
                                  worker=w, roles=(w,), severity=Severity.INFO,
                                  fix=Fix("run at least one prefill replica where disaggregated prefill is meant"))
                continue
            yield ctx.finding(self, w.replicas.span, f"{w.name} (prefill) has {field} and no other prefill worker runs: zero prefill capacity, so "
                              "requests that need a prefill worker hang, fail or silently prefill on the decode side"
                              + ("" if routed else " (a note: nothing in this file routes to a decode side)"),
                              worker=w, roles=(w,), severity=None if routed else Severity.INFO,
                              fix=Fix("run at least one prefill replica, or remove the prefill side and serve aggregated"))
