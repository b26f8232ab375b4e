from __future__ import annotations

from disagg.schemas.readers.trtllm import INSTANCES_SOURCE

from ...finding import Fix, Severity
from ...registry import Rule


class DG408(Rule):
    """## What it does
    Reports a TensorRT-LLM disaggregated-server config (`trtllm-serve disaggregated -c FILE`, a file of its own or one
    a script writes) whose `context_servers` or `generation_servers` list `urls` in a number other than its
    `num_instances` (1 when left out).

    ## Why is this bad?
    `trtllm-serve disaggregated` reads the file with `parse_disagg_config_file`, whose `extract_ctx_gen_cfgs` raises
    `ValueError: Number of hostnames (2) should be equal to the number of instances (3)` (NVIDIA/TensorRT-LLM@0228a71
    `tensorrt_llm/llmapi/disagg_utils.py`): the disaggregated server never starts, so no request reaches either side.
    Adding a server's URL without raising `num_instances` (or the reverse) is the usual way to get there.

    ## Example
    ```yaml
    context_servers:
      num_instances: 2
      urls: ["localhost:8001"]
    ```

    ## Use instead
    ```yaml
    context_servers:
      num_instances: 1
      urls: ["localhost:8001"]
    ```
    """

    code = "DG408"
    name = "trtllm-instances-urls"
    severity = Severity.ERROR

    def check(self, ctx):
        for issue in ctx.deployment.issues:
            if issue.kind != "trtllm_instances":
                continue
            urls, n = issue.get("urls"), issue.get("num_instances")
            said = f"num_instances is {n}" if issue.get("written") else "num_instances is left at its default, 1,"
            yield ctx.finding(self, issue.span, f"{issue.message}: {said} but {urls} url{'s are' if urls != 1 else ' is'} listed: trtllm-serve disaggregated "
                              f"raises ValueError reading this config and never starts [{INSTANCES_SOURCE}]",
                              fix=Fix(f"set {issue.message}.num_instances to {urls}, or list {n} url{'s' if n != 1 else ''}"))
