from __future__ import annotations

from disagg.schemas.config import DISAGG_KEYS, SECTION_NAMES

from ...finding import Edit, Fix, Severity
from ...registry import Rule

# Misspelling these loses a whole worker or the disaggregation switches: an error, not a warning.
_CRITICAL = frozenset(DISAGG_KEYS) | frozenset(SECTION_NAMES) | {"kv-transfer-config", "ServiceArgs", "common-configs", "workers", "gpu"}


class DG401(Rule):
    """## What it does
    Reports sections and keys that Dynamo does not know, with the closest known name (`VLLMWorker` →
    `VllmWorker`, `remote_prefill` → `remote-prefill`, `max-local-prefill-lenght` → `max-local-prefill-length`).

    ## Why is this bad?
    Dynamo ignores an unknown section (its service gets no config at all) and passes unknown keys on as flags that
    the engine may reject or drop. A misspelt `remote-prefill` leaves remote prefill off without a word, which is
    the very failure this tool exists to catch.

    ## Example
    ```yaml
    VLLMWorker:
      remote_prefill: true
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
    ```
    """

    code = "DG401"
    name = "unknown-key"
    severity = Severity.WARNING

    def check(self, ctx):
        if ctx.parse is None:
            return
        for issue in ctx.parse.issues:
            if issue.kind not in ("unknown_section", "unknown_key"):
                continue
            name = issue.path[-1]
            critical = issue.kind == "unknown_section" or issue.suggestion in _CRITICAL
            if issue.suggestion:
                p = ctx.pos(issue.path)
                fix = Fix(f"rename to {issue.suggestion!r}", (Edit("replace", p.line, p.column, p.end_line, p.end_column, issue.suggestion),))
                message = f"{issue.message}; did you mean {issue.suggestion!r}?"
            else:
                fix = Fix(f"remove {name!r}, or check the spelling")
                message = issue.message
            if issue.kind == "unknown_section":
                message += " Dynamo ignores the whole section"
            elif critical:
                message += f" As written it is ignored, so {issue.suggestion} keeps its default"
            yield ctx.finding(self, issue.path, message, fix=fix, severity=Severity.ERROR if critical else None)
