"""Dynamo's own worker scripts of its 0.3-0.5 examples (`python3 components/worker.py ...`), which parse an engine's
arguments although no module name says so: which program such a script runs, and whether a file runs Dynamo at all
(moved out of cmdline.py, which had grown past its size)."""

from __future__ import annotations

import re

# Dynamo 0.3's SGLang examples start their workers as scripts that parse SGLang's own ServerArgs from argv
# (ai-dynamo/dynamo examples/sglang/launch/disagg.sh at 03fd0a23: `python3 components/worker_inc.py ... --disaggregation-mode
# prefill` and `components/decode_worker_inc.py`; both call utils/sgl_utils.py parse_sglang_args_inc ->
# ServerArgs.add_cli_args, components/worker_inc.py and utils/sgl_utils.py at 10c604e1).
_DYNAMO_SGLANG_SCRIPTS = ("components/worker_inc.py", "components/decode_worker_inc.py")
# Dynamo's component scripts of the same era, run from an example's folder: they are Dynamo's only where the file
# runs Dynamo (a DynamoGraphDeployment, or a script that starts Dynamo's `dynamo run in=http out=dyn` ingress), since
# `components/main.py` is a name any project may use. Sources (bytedance-iaas/dynamo, a fork of ai-dynamo/dynamo, at
# 1704b126f33b9263d4031081acef234fa0391337):
# - examples/vllm_v1/components/main.py: `parse_args` (components/args.py) is vLLM's FlexibleArgumentParser with
#   AsyncEngineArgs.add_cli_args plus `--is-prefill-worker` (serves prefill; without it `init` serves decode with a
#   client of the prefill component) and `--endpoint`: the `python -m dynamo.vllm` of later releases.
# - examples/sglang/components/worker.py and decode_worker.py: `parse_sglang_args_inc(sys.argv[1:])`
#   (utils/sgl_utils.py) is SGLang's ServerArgs.add_cli_args; the role is SGLang's `--disaggregation-mode`.
_DYNAMO_COMPONENT_SCRIPTS = {"components/worker.py": "dynamo.sglang", "components/decode_worker.py": "dynamo.sglang"}
# From Dynamo 0.4 the one `components/worker.py` Dynamo ships is the multimodal example's vLLM worker, whose parser
# requires `--worker-type prefill|decode|encode_prefill` (a flag SGLang's ServerArgs does not have): ai-dynamo/dynamo
# examples/multimodal/components/worker.py at e3619ce0990675b2952e2ab22cf614279a8c6403 (PR #2040 added it after 0.4.0;
# 0.4.1 and 0.5.0 have it). Its role and connector are read in engines.py (DYNAMO_MULTIMODAL_VLLM).
DYNAMO_MULTIMODAL_VLLM = "dynamo-multimodal:vllm"
_MULTIMODAL_WORKER_TYPES = ("prefill", "decode", "encode_prefill")
_DYNAMO_RUNTIME = re.compile(r"\bdynamo\s+run\b[^\n]*\bout=dyn\b|^kind:\s*DynamoGraphDeployment\s*$", re.M)
_DYNAMO_FRONTEND = re.compile(r"\s-m\s+dynamo\.frontend\b")  # Dynamo's ingress from 0.4 (`python -m dynamo.frontend`)


def runs_dynamo(file_text: str) -> bool:
    """The file runs Dynamo's runtime: a DynamoGraphDeployment, or a script that starts `dynamo run ... out=dyn`."""
    # both forms hold a fixed word: a 1 MB script without either is not searched character by character
    if "dynamo" not in file_text and "DynamoGraphDeployment" not in file_text:
        return False
    return bool(_DYNAMO_RUNTIME.search(file_text))


def runs_dynamo_frontend(file_text: str) -> bool:
    """The file starts Dynamo 0.4+'s ingress, `python -m dynamo.frontend`: the release whose one `components/worker.py`
    is the multimodal example's (the 0.3 component scripts do not exist there)."""
    return "dynamo.frontend" in file_text and bool(_DYNAMO_FRONTEND.search(file_text))  # the search only where its words are


def multimodal_worker(script: str, worker_type: str | None) -> bool:
    """`components/worker.py --worker-type T` of Dynamo 0.4-0.5's multimodal example (see DYNAMO_MULTIMODAL_VLLM)."""
    script = script.removeprefix("./")
    return (script == "components/worker.py" or script.endswith("/components/worker.py")) and worker_type in _MULTIMODAL_WORKER_TYPES


def dynamo_component(script: str, flags: set[str], workdir: str = "") -> str | None:
    """The Dynamo program a `python3 components/<x>.py` of Dynamo's 0.3-0.4 examples runs (see
    _DYNAMO_COMPONENT_SCRIPTS), for a file that runs Dynamo; None when the script is not one of them or its engine is
    not said. `main.py`'s engine comes from the backend folder it runs in, else from flags only its parser has
    (`--is-prefill-worker` is the vLLM component's; `--model-path` SGLang's ServerArgs)."""
    script = script.removeprefix("./")
    for suffix, program in _DYNAMO_COMPONENT_SCRIPTS.items():
        if script == suffix or script.endswith("/" + suffix):
            return program
    if not (script == "components/main.py" or script.endswith("/components/main.py")):
        return None
    where = (workdir + "/" + script).lower()
    for backend, folders in (("vllm", ("backends/vllm", "vllm_v1")), ("sglang", ("backends/sglang",)), ("trtllm", ("backends/trtllm",))):
        if any(f in where for f in folders):
            return f"dynamo.{backend}"
    if "--is-prefill-worker" in flags or ("--model" in flags and "--model-path" not in flags):
        return "dynamo.vllm"
    if "--model-path" in flags:
        return "dynamo.sglang"
    return None
