from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG508(Rule):
    """## What it does
    Reports a deployment that stopped answering while it was watched: the frontend's metrics (or the Prometheus
    server that holds them) failed on the latest scrape after at least one scrape worked. It names the last
    successful scrape, how long ago that was, and what failed; the workers last listed are reported down by DG504.

    ## Why is this bad?
    A dead frontend serves no request, so it also shows no traffic: read naively, the window says "quiet, send
    traffic" and a pipeline waiting for a verdict takes the outage for a healthy idle deployment. Being down
    outranks every traffic verdict, and the watch exits non-zero.

    ## Example
    ```sh
    disagg doctor --live http://127.0.0.1:8000 --duration 30   # the frontend is killed 3 s in
    ```

    ## Use instead
    ```sh
    # restart the frontend (its log says why it stopped); the watch reads it again on its next scrape
    disagg serve config.yaml
    ```
    """

    code = "DG508"
    name = "deployment-unreachable"
    severity = Severity.ERROR
    live = True

    def check(self, ctx):
        last = ctx.window.last
        if last is None or not last.frontend_error:
            return
        ok = [s for s in ctx.window.snaps if not s.frontend_error]
        failed = len(ctx.window.snaps) - len(ok)
        if ok:
            since = last.t - ok[-1].t
            when = f"last answered {since:.1f} s ago (scrape at +{ok[-1].t:.1f} s)"
        else:
            since, when = None, f"no scrape in the last {ctx.window.span:.0f} s answered"
        yield ctx.finding(
            self, f"the deployment at {ctx.target} stopped answering: {when}; {last.frontend_error}",
            fix=Fix("check that the frontend process is running and reachable (its log says why it stopped)"),
            subject="frontend", confidence=0.99,
            evidence={"error": last.frontend_error, "last_ok_s": round(ok[-1].t, 2) if ok else None, "down_for_s": round(since, 2) if since is not None else None,
                      "failed_scrapes": failed, "workers_last_listed": len(last.workers)},
        )
