"""Programs that run one of several components, chosen by a flag before any engine is built: which of them holds a
KV cache, and in which role. Dynamo's `python -m dynamo.sglang` component flags, and the vLLM worker of Dynamo's
multimodal example (`components/worker.py --worker-type`)."""

from __future__ import annotations

from .cmdline import DYNAMO_MULTIMODAL_VLLM, Command
from .model import Setting, Unknown, Worker

# `python -m dynamo.sglang` runs one of several components, chosen by a flag before any engine is built
# (ai-dynamo/dynamo components/src/dynamo/sglang/main.py `worker()` and args.py DYNAMO_ARGS at
# 62661cce3c251b7a85105819cccbb46bb40defc0, PR #3230 "Add multimodal EPD for Sglang", the main.py of the 0.5.1 fork
# vickiegpt/dynamo at 9f68320; the encode worker is still engine-less at 401d5ef, init_multimodal.py):
# - `--multimodal-processor` (checked first): `init_multimodal_processor` builds no sgl.Engine; it registers the model
#   with the frontend and forwards each request to the `encoder` component;
# - `--multimodal-encode-worker`: `init_multimodal_encode_worker` builds no sgl.Engine either; its handler runs a
#   transformers vision model and hands the image embeddings to the `backend` component over dynamo.nixl_connect.
# Neither holds or moves a KV cache, so neither is a prefill or decode side, whatever SGLang flags it is also given.
# - `--multimodal-worker` builds an sgl.Engine with the SGLang flags given: `--disaggregation-mode prefill` serves
#   prefill (`init_multimodal_prefill_worker`), decode serves decode with a client of the `prefill` component, and no
#   mode serves aggregated with no prefill client (`init_multimodal_worker`, serving_mode AGGREGATED).
_DYNAMO_SGLANG_COMPONENTS = (
    ("multimodal-processor", "processor", "no SGLang engine: it forwards requests to the encoder"),
    ("multimodal-encode-worker", "encode", "a vision encoder, no SGLang engine and no KV cache"),
)

# Dynamo's multimodal example worker (examples/multimodal/components/worker.py, ai-dynamo/dynamo at
# e3619ce0990675b2952e2ab22cf614279a8c6403 and in 0.4.1 and 0.5.0): `--worker-type` (required, prefill | decode |
# encode_prefill) picks the handler in `init`: prefill and encode_prefill run VllmPDWorker, which prefills and, with
# `--enable-disagg`, sends the decode to the `decoder` component (`do_remote_decode`, max_tokens 1), else serves the
# whole request; decode runs VllmDecodeWorker, the `decoder` component. utils/args.py `overwrite_args` gives every
# one of them `KVTransferConfig(kv_connector="NixlConnector", kv_role="kv_both")`, whatever its command line says, and
# `configure_ports_with_etcd` reserves each worker its own NIXL side-channel port (VLLM_NIXL_SIDE_CHANNEL_PORT).
MULTIMODAL_EXAMPLE_CONNECTOR = "NixlConnector"


def component_role(w: Worker) -> bool:
    """The role a component flag decides before any engine flag counts (the tables above); True when it decided."""
    if w.program == "dynamo.sglang":
        for flag, role, why in _DYNAMO_SGLANG_COMPONENTS:
            if flag in w.flags:
                w.engine = None  # no engine of its own: never a prefill or decode side
                w.set_role(role, f"--{flag}: {why}", "flag")
                return True
        if "multimodal-worker" in w.flags and "disaggregation_mode" not in w.settings and "opaque_args" not in w.settings:
            w.set_role("aggregated", "--multimodal-worker without --disaggregation-mode serves aggregated", "flag")
            return True
        return False
    if w.program == DYNAMO_MULTIMODAL_VLLM:
        given = w.flags.get("worker-type")
        kind = given.value if given is not None and given.known else None
        if kind in ("prefill", "encode_prefill"):
            if "enable-disagg" in w.flags:
                w.set_role("prefill", f"--worker-type {kind} --enable-disagg", "flag")
            else:
                w.set_role("aggregated", f"--worker-type {kind} without --enable-disagg serves the whole request", "flag")
            return True
        if kind == "decode":
            w.set_role("decode", "--worker-type decode", "flag")
            return True
    return False


def multimodal_worker_settings(w: Worker, cmd: Command) -> None:
    """What Dynamo's multimodal example worker sets itself, over its command line (see DYNAMO_MULTIMODAL_VLLM above)."""
    why = "set by Dynamo's multimodal worker (utils/args.py overwrite_args)"
    w.settings["kv_config"] = Setting({"kv_connector": MULTIMODAL_EXAMPLE_CONNECTOR, "kv_role": "kv_both"}, cmd.start, why)
    w.settings["kv_connector"] = Setting(MULTIMODAL_EXAMPLE_CONNECTOR, cmd.start, why)
    w.settings["kv_role"] = Setting("kv_both", cmd.start, why)
    w.settings["side_channel_port"] = Setting(Unknown("reserved per worker in etcd at start (utils/args.py configure_ports_with_etcd)"),
                                              cmd.start, "set by Dynamo's multimodal worker")
