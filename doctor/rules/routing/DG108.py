from __future__ import annotations

from disagg.schemas.roles import LABEL_GAPS

from ...finding import Fix, Related, Severity
from ...registry import Rule

SOURCE = "vllm-project/production-stack@a6c01db src/vllm_router/routers/routing_logic.py:600-630, service_discovery.py:657-669"


class DG108(Rule):
    """## What it does
    Reports vLLM production-stack's router (`python -m vllm_router.app`) in a P/D routing logic
    (`disaggregated_prefill`, `disaggregated_prefill_orchestrated`) with Kubernetes discovery whose
    `--prefill-model-labels` (or `--decode-model-labels`) name no pod it discovers, while a discovered vLLM pod carries
    a `model` label that neither list names: the pod meant for that side, labelled otherwise. The pods are looked for in
    the router's file and, when they are given together, the other files of its folder.

    ## Why is this bad?
    The router takes an endpoint's model label from its pod's `model` label and picks the prefill endpoints among
    those whose label is in `--prefill-model-labels`; with none, it answers every request 503
    `PREFILL_SERVICE_UNAVAILABLE` (`DECODE_SERVICE_UNAVAILABLE` for the decode side). The prefill pod runs, idle.

    ## Example
    ```yaml
    # prefill pod: labels {app: prefill, model: prefil}
    args: ["--routing-logic=disaggregated_prefill_orchestrated", "--service-discovery=k8s",
           "--k8s-label-selector=app in (prefill,decode)", "--prefill-model-labels=prefill", "--decode-model-labels=decode"]
    ```

    ## Use instead
    ```yaml
    # prefill pod: labels {app: prefill, model: prefill}
    ```
    """

    code = "DG108"
    name = "router-labels-select-no-pod"
    severity = Severity.WARNING
    also = {Severity.INFO: "the router has no --k8s-label-selector: the pods it finds in the files read may be another deployment's"}

    def check(self, ctx):
        for router in ctx.deployment.workers:
            gaps = router.settings.get(LABEL_GAPS)
            if gaps is None:
                continue
            for role, stray, selected in gaps.value:
                flag = router.settings.get(f"router_{role}_labels")
                names = ", ".join(f"{name} (model={label})" for name, _, _, _, label in stray[:3])
                wanted = ",".join(flag.value) if flag is not None else "?"
                related = tuple(Related(path, line, column, line, column + 1, f"{name}: model={label}") for name, path, line, column, label in stray[:3])
                yield ctx.finding(self, flag.span if flag is not None else router.span,
                                  f"{router.name} sends {role} to pods labelled model={wanted}, but none of the pods it discovers is; "
                                  f"{names} {'is' if len(stray) == 1 else 'are'} discovered and sent nothing: every request is answered 503 "
                                  f"{role.upper()}_SERVICE_UNAVAILABLE and the {role} pods sit idle [{SOURCE}]"
                                  + ("" if selected else " (a note: with no --k8s-label-selector the router finds every pod of its namespace, "
                                                         "so these may belong to another deployment)"),
                                  worker=router, related=related, severity=None if selected else Severity.INFO,
                                  fix=Fix(f"label the {role} pods model={flag.value[0] if flag is not None and flag.value else role}, "
                                          f"or add their label to --{role}-model-labels"))
