from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG406(Rule):
    """## What it does
    Reports a launch script saved with CRLF (Windows) line ends in which a server's command is written over several
    lines ending in `\\`.

    ## Why is this bad?
    The shell continues a line only at a backslash followed by a newline (POSIX XCU 2.2.1 "Escape Character"; bash's
    manual 3.1.2.1). With CRLF line ends every line ends in a carriage return, so `\\` escapes the CR instead: the
    command ends at its first line (with a stray CR as its last argument) and every flag line after it runs as a
    command of its own, which fails with "command not found". The server starts without its
    `--disaggregation-mode`, connector and parallelism flags (or not at all, when the model was on a later line). A
    script edited on Windows, or checked out with `core.autocrlf=true`, looks right in every editor.

    ## Example
    ```bash
    # launch.sh, saved with CRLF line ends (`file launch.sh`: "with CRLF line terminators")
    python -m sglang.launch_server \\
        --model-path /models/m \\
        --disaggregation-mode decode
    ```

    ## Use instead
    ```bash
    sed -i 's/\\r$//' launch.sh   # LF line ends; `*.sh text eol=lf` in .gitattributes keeps them so
    ```
    """

    code = "DG406"
    name = "crlf-breaks-continuation"
    severity = Severity.ERROR

    def check(self, ctx):
        for issue in ctx.deployment.issues:
            if issue.kind != "crlf_continuation":
                continue
            cut = issue.get("cut", ())
            shown = ", ".join(f"`{c}`" for c in cut[:2]) + (f" and {len(cut) - 2} more" if len(cut) > 2 else "")
            lost = f"without the {len(cut)} line{'s' if len(cut) != 1 else ''} after it ({shown}), each of which runs as a command of its own" \
                if cut else "with a stray carriage return as its last argument"
            yield ctx.finding(self, issue.span, f"this script has CRLF line ends: the shell reads `\\` before a carriage return as an escaped "
                              f"CR, not a line continuation, so `{issue.message}` starts here {lost}",
                              fix=Fix("save the script with LF line ends (`sed -i 's/\\r$//' FILE`; `*.sh text eol=lf` in .gitattributes)"))
