from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule

_FLAG = "disaggregation-strategy"
_STRATEGIES = "dynamo-trtllm-disagg-strategy"  # its choices per release (generated, transports.json)
_DEFAULT = "decode_first"  # DEFAULT_DISAGGREGATION_STRATEGY in every release that has the flag (knowledge: dynamo.trtllm.strategy_chain)


def _said(s, value: str) -> str:
    return value if s is not None else f"{value} (the default)"


class DG605(Rule):
    """## What it does
    Reports a `dynamo.trtllm` prefill worker and decode worker of one deployment that run different
    `--disaggregation-strategy` values (`prefill_first` or `decode_first`, the default), in the Dynamo releases that have
    the flag (0.4 to 0.6, read from the wheels).

    ## Why is this bad?
    The strategy decides which worker is the first of the chain: it alone registers the model with the frontend and
    calls the other one. With different strategies either both workers register and each calls the other (the request
    that comes back to the prefill worker already carries KV parameters, which it refuses), or neither registers and
    the frontend never lists the model. Either way no request is served disaggregated.

    ## Example
    ```bash
    python3 -m dynamo.trtllm --disaggregation-mode prefill --disaggregation-strategy prefill_first --next-endpoint dyn://ns.tensorrt_llm.generate &
    python3 -m dynamo.trtllm --disaggregation-mode decode --disaggregation-strategy decode_first &
    ```

    ## Use instead
    ```bash
    python3 -m dynamo.trtllm --disaggregation-mode prefill --disaggregation-strategy prefill_first --next-endpoint dyn://ns.tensorrt_llm.generate &
    python3 -m dynamo.trtllm --disaggregation-mode decode --disaggregation-strategy prefill_first &
    ```
    """

    code = "DG605"
    name = "trtllm-strategy-mismatch"
    severity = Severity.ERROR
    also = {Severity.WARNING: "where the file does not say which Dynamo release runs: the finding holds in the releases that have the flag"}
    on_roles = True

    def check(self, ctx):
        chain = knowledge.fact("dynamo.trtllm.strategy_chain")
        for pair in ctx.pairs:
            p, d = pair.prefill, pair.decode
            if p.program != "dynamo.trtllm" or d.program != "dynamo.trtllm":
                continue
            ps, ds = p.flags.get(_FLAG), d.flags.get(_FLAG)
            if ps is None and ds is None:
                continue
            if any(s is not None and (not s.known or not isinstance(s.value, str)) for s in (ps, ds)):
                continue
            pv = ps.value if ps is not None else _DEFAULT
            dv = ds.value if ds is not None else _DEFAULT
            choices = knowledge.transport_names(_STRATEGIES, chain.releases)
            if pv == dv or pv not in choices or dv not in choices:
                continue  # a value off the choices is the parser's to refuse, not a mismatch
            verdicts = {knowledge.verdict(w.target, "dynamo", chain.releases) for w in (p, d)}
            if False in verdicts:
                continue
            sev = None if verdicts == {True} else Severity.WARNING
            where = "" if sev is None else f" (in Dynamo {min(chain.releases, key=knowledge.version_key)}..{max(chain.releases, key=knowledge.version_key)}, " \
                "the releases that have the flag; the file does not say which runs)"
            at, key = (d, _FLAG) if ds is not None else (p, _FLAG)
            yield ctx.pair_finding(self, pair, at, at.where(key),
                                   f"{p.name} (prefill) runs --disaggregation-strategy {_said(ps, pv)} but {d.name} (decode) {_said(ds, dv)}{where}: "
                                   f"{'both register the model and each calls the other' if pv == 'prefill_first' else 'neither registers the model with the frontend'}, "
                                   f"so no request is served disaggregated [{chain.cite()}]",
                                   severity=sev, other_key=key, fix=Fix("give the prefill and decode workers the same --disaggregation-strategy"))
