"""Facts several rules derive from the deployment model, computed one way for all of them."""

from __future__ import annotations

from typing import Any

from disagg.schemas import knowledge
from disagg.schemas.engines import KV_CONNECTORS, as_int
from disagg.schemas.knowledge import version_key
from disagg.schemas.kv_config import connectors
from disagg.schemas.model import Deployment, Unknown, Worker
from disagg.schemas.policy import flag_bool, routing_policy, v0_decode, v0_router  # the runtime routes with the same
from disagg.schemas.roles import flags_hidden

# TensorRT-LLM's environment switches for the KV cache transceiver (0.19-0.21 examples export TRTLLM_USE_UCX_KVCACHE=1)
_TRTLLM_KV_ENV = ("TRTLLM_USE_UCX_KVCACHE", "TRTLLM_USE_MPI_KVCACHE", "TRTLLM_USE_NIXL_KVCACHE")
VLLM_DEFAULT_BLOCK_SIZE = 16  # tokens: vLLM's default on GPUs; dynamo.vllm 0.4 sets the same when unset (args.py)

__all__ = ["as_int", "connector_of", "v0_decode", "v0_router", "routing_policy", "prefill_capacity", "block_size", "flag_bool", "VLLM_DEFAULT_BLOCK_SIZE",
           "or_default", "engine_nodes"]


def or_default(w: Worker, key: str, default: Any) -> Any:
    """A setting's value, or the engine's `default` where the file leaves it unset; None where it is unset but the
    worker also takes arguments the file does not show (`$ARGS` set at run time, a --config file not in the run),
    which may set it: a default is assumed only where nothing else can decide the value."""
    s = w.settings.get(key)
    if s is not None:
        return s.value
    return None if flags_hidden(w) else default


def prefill_capacity(dep: Deployment) -> tuple[int, str, Worker | None]:
    """(prefill worker processes that can run, why none when 0, the prefill worker to point at)."""
    pre = [w for w in dep.of_role("prefill") if w.is_engine]
    if not pre:
        return 0, "there is no prefill worker section", None
    total = 0
    why = ""
    for w in pre:
        n = w.replicas.value if isinstance(w.replicas.value, int) else 1
        gpus = w.gpus.value
        if n <= 0:
            why = f"{w.name} has workers: {n}"
            continue
        if gpus == 0:
            why = f"{w.name} asks for gpu: 0"
            continue
        total += n
    return total, why, pre[0]


# The words dynamo.vllm's --connector takes (VALID_CONNECTORS, compared lower-cased) in every release that has the flag
# and reads it, 0.5.0..0.9.1 (fact dynamo.vllm.connector_flag_values); from 1.0.0 the flag itself makes it raise.
DYNAMO_VLLM_CONNECTOR_WORDS = frozenset({"nixl", "lmcache", "kvbm", "null", "none"})


def dynamo_patch_within(w, releases: frozenset[str]) -> bool:
    """The worker's image names a Dynamo release no table describes (a patch image such as `vllm-runtime:0.6.1.post1`)
    that sorts between the first and last of `releases`: where a fact holds in every release of that span, it holds
    for the patch too."""
    s = w.settings.get("dynamo_image_release")
    if s is None or not releases:
        return False
    ordered = sorted(releases, key=version_key)
    span = knowledge.versions_between("dynamo", ordered[0], ordered[-1])
    return span <= releases and version_key(ordered[0]) <= version_key(str(s.value)) <= version_key(ordered[-1])


def connector_of(w: Worker) -> tuple[set[str] | None, str]:
    """The KV connectors a worker runs with (nested ones included), or None when that depends on what the file does
    not say; and why. Dynamo's vLLM worker supplied one by default in some releases."""
    s = w.settings.get("kv_config")
    if s is not None:
        if not s.known:
            written = w.settings.get(KV_CONNECTORS)
            if written is not None:
                return set(written.value), "its kv-transfer-config's connector fields (other values in it are set at run time)"
            return None, str(s.value)
        return connectors(s.value), "its kv-transfer-config"
    s = w.settings.get("kv_connector")
    if s is not None:
        return ({str(s.value)} if s.known else None), "its --kv-connector"
    if w.engine == "trtllm":
        if w.settings.get("cache_transceiver") is not None:
            backend = w.known("transfer_backend", "default")
            return {f"cache_transceiver:{backend}"}, "its cache_transceiver_config"
        if any(k in w.env for k in _TRTLLM_KV_ENV):
            # releases before cache_transceiver_config.backend chose the transceiver by environment: whether this
            # release still needs the config as well is not settled here
            return None, f"{next(k for k in _TRTLLM_KV_ENV if k in w.env)} is set"
        if w.program == "trtllm-serve" and "extra_engine_args" not in w.settings:
            return set(), "no cache_transceiver_config"
        return None, "its engine config is not in this file"
    if w.program == "dynamo.vllm":
        conn = w.settings.get("connector")
        if conn is not None:
            if not conn.known:
                return None, "--connector is set at run time"
            names = {c.strip().lower() for c in str(conn.value).replace(",", " ").split()}
            if names - DYNAMO_VLLM_CONNECTOR_WORDS or (len(names) > 1 and names & {"none", "null"}):
                return None, f"--connector {conn.value} is refused at start (DG212)"
            if names <= {"none", "null"}:
                return set(), f"--connector {conn.value}"
            return {"NixlConnector" if n == "nixl" else n for n in names}, "--connector"
        forced = knowledge.pattern("dynamo", "vllm.nixl_connector_forced").releases
        default = knowledge.pattern("dynamo", "vllm.connector_flag_default_nixl").releases
        verdict = knowledge.verdict(w.target, "dynamo", forced | default)
        if verdict is True:
            return {"NixlConnector"}, "dynamo.vllm's default NixlConnector in " + w.target.describe("dynamo")
        if verdict is False:
            return set(), "no kv-transfer-config, and dynamo.vllm has no default connector in " + w.target.describe("dynamo")
        return None, "dynamo.vllm's default connector depends on the release (" + w.target.describe("dynamo") + ")"
    if w.program in ("image-entrypoint", "unknown-module"):
        return None, "the command is not in the file"
    if w.engine in ("vllm",):
        # KServe's and llm-d's templates pass the engine's flags through; a routing sidecar that speaks P/D in front of
        # engines without a connector is a known failure (kserve/kserve#5987, llm-d-router#1220)
        return set(), "no kv-transfer-config"
    return None, "not a vLLM-style connector"



def default_nixl_where_prefill_starts(d: Worker, p: Worker) -> str | None:
    """Why both ends of a dynamo.vllm pair move KV with NixlConnector in every release where the pair runs at all, or
    None. Where neither side states a connector and the Dynamo release is not known, `connector_of` cannot say; but
    dynamo.vllm gives a worker NixlConnector by default in 0.4.0-0.9.1 (patterns vllm.nixl_connector_forced and
    vllm.connector_flag_default_nixl), and from 1.0.0 it raises at start for a prefill worker (--is-prefill-worker or
    --disaggregation-mode prefill) without --kv-transfer-config (dynamo/vllm/args.py, read from the ai-dynamo 1.0.0
    and 1.3.1 wheels, in the releases of pattern vllm.connector_flag_rejected). So a pair whose prefill worker starts
    runs NixlConnector on both sides when every candidate release is one or the other."""
    if p.program != "dynamo.vllm" or p.role != "prefill" or p.role_from != "flag":
        return None
    if any(connector_of(w)[0] is not None for w in (d, p)) or d.program != "dynamo.vllm" or "connector" in d.settings or "connector" in p.settings:
        return None
    nixl = knowledge.pattern("dynamo", "vllm.nixl_connector_forced").releases | knowledge.pattern("dynamo", "vllm.connector_flag_default_nixl").releases
    refuses = knowledge.pattern("dynamo", "vllm.connector_flag_rejected").releases
    for w in (d, p):
        if knowledge.verdict(w.target, "dynamo", nixl | refuses) is not True or not w.target.releases("dynamo") & nixl:
            return None
    return (f"dynamo.vllm's default NixlConnector where the prefill worker starts ({p.target.describe('dynamo')}: the default in 0.4.0..0.9.1; "
            "from 1.0.0 a prefill worker without --kv-transfer-config does not start)")

def block_size(w: Worker) -> tuple[int | None, bool]:
    """(block size in tokens, written in the file); None when unknown (a run-time value, or no default we trust)."""
    s = w.settings.get("block_size")
    if s is not None:
        return as_int(s.value), True
    if w.engine == "vllm" and w.program not in ("image-entrypoint",) and not flags_hidden(w):
        return VLLM_DEFAULT_BLOCK_SIZE, False
    return None, False


def value_text(v: Any) -> str:
    return str(v) if not isinstance(v, Unknown) else "?"


# Engines that read `--nnodes` and place `tensor × pipeline` ranks evenly over that many nodes, the flag table each
# one's flags come from (dynamo.sglang parses with SGLang's ServerArgs, dynamo.vllm with vLLM's AsyncEngineArgs:
# ai-dynamo/dynamo 2a6da14 components/src/dynamo/{sglang/args.py:362,vllm/args.py:104}).
# - SGLang: `tp_size_per_node = tp_size // nnodes_per_tp_group`, `pp_size_per_node = max(pp_size // nnodes, 1)`
#   (python/sglang/srt/entrypoints/engine.py: v0.4.6 84022c0 line 511, v0.5.8.post1 c1f2241 lines 878-889, the DP
#   controller the same in managers/data_parallel_controller.py:407-418; v0.5.17+18 6ed5780 `_calculate_rank_ranges`);
#   `--nnodes` defaults to 1 (schemas/knowledge/generated/sglang.json).
# - vLLM (0.11.1 and later define `--nnodes`, generated/vllm.json): `local_world_size = world_size // nnodes` with
#   world = data × pipeline × tensor, and nnodes > 1 only with the multiprocessing executor
#   (vllm/engine/arg_utils.py `_set_default_args`/`create_engine_config`, vllm/config/parallel.py `nnodes_within_dp`;
#   vllm-project/vllm as of 04c0ba6, 2026-03). Without it vLLM may still span nodes through Ray, which the command
#   does not state, so an unwritten `--nnodes` says nothing there.
_NNODES_TABLE = {"sglang": "sglang", "vllm": "vllm"}


def engine_nodes(w: Worker) -> int | Unknown | None:
    """The nodes one engine's ranks are spread over, as the engine itself reads them: SGLang's and vLLM's `--nnodes`
    (an int, or Unknown when set at run time: `--nnodes $NNODES`); SGLang without it runs on one node (its default);
    None where the command does not say (vLLM without `--nnodes` may span nodes through Ray; other engines' world
    size comes from their launcher)."""
    if w.program == "lightllm":
        # LightLLM: `--nnodes`, default 1 (api_cli.py:117); each node runs tp // nnodes ranks (ModelTC/lightllm@fc72ffab
        # lightllm/server/router/manager.py:40-41,120-131)
        s = w.flags.get("nnodes")
        if s is None:
            return None if flags_hidden(w) else 1
        n = as_int(s.value) if s.known else None
        return n if isinstance(n, int) and n > 0 else Unknown(f"--nnodes {s.value}")
    table = _NNODES_TABLE.get(w.engine or "")
    if table is None or w.program not in (table, f"dynamo.{table}"):
        return None
    s = w.flags.get("nnodes")
    if s is None:
        return 1 if table == "sglang" and not flags_hidden(w) else None
    if not knowledge.flag_releases(table, table, "--nnodes"):
        return None
    if not s.known:
        return Unknown(str(s.value))
    n = as_int(s.value)
    return n if isinstance(n, int) and n > 0 else Unknown(f"--nnodes {s.value}")
