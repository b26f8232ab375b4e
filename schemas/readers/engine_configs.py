"""Engine config files that a worker's command line names and the run may hold: TensorRT-LLM's --extra-engine-args
(in a ConfigMap of the manifest or written by the script), the disaggregated router's config a script writes, and the
SGLang server-argument files a `--config` reads (linked across files by readers/sglang_config.py)."""

from __future__ import annotations

import os

from ..model import Deployment, Setting, Unknown
from ..source import SourceDocument, Span


def configmap(doc: SourceDocument, configs: dict) -> None:
    from . import trtllm

    data = doc.data.get("data")
    if not isinstance(data, dict):
        return
    from .embedded import embedded_yaml

    for key, text in data.items():
        if not isinstance(text, str):
            continue
        found = embedded_yaml(doc, ("data", key), text)
        if found is None or not found[0] or not trtllm.looks_like_engine_config(found[0][0].data):
            continue
        configs[str(key)] = (found[0][0], (), found[0][0].data, found[1])


def link_engine_configs(dep: Deployment, configs: dict, engine: str | None = None) -> None:
    """A TensorRT-LLM worker's --extra-engine-args file, when the same manifest carries it in a ConfigMap or the
    script writes it (for a script only TensorRT-LLM workers: the keys read are TensorRT-LLM's LlmArgs)."""
    from . import trtllm

    for w in dep.workers:
        path = w.known("extra_engine_args")
        if not isinstance(path, str):
            continue
        found = configs.get(os.path.basename(path)) if engine is None or w.engine == engine else None
        if found is not None:
            inner, base, cfg, to_file = found
            trtllm.apply_engine_config(w, inner, base, cfg, to_file)
        else:
            w.notes.append(f"engine settings are in {path}, which is not in this file")
            s = w.settings["extra_engine_args"]
            if s.origin == "--config" and "opaque_args" not in w.settings:
                # `--config FILE` is expanded into command-line arguments before parsing (vLLM's FlexibleArgumentParser,
                # SGLang's --config): any flag, a role flag included, may be in the file the run does not show
                w.settings["opaque_args"] = Setting(Unknown(f"its --config file {path}, not in this run, is read as arguments", unread_file=path),
                                                       s.span, "arguments from a file")


def sglang_config_refs(dep: Deployment) -> None:
    """SGLang workers that read a server-argument file with `--config`: that file may be another file of the run
    (readers/sglang_config.py links them)."""
    if any(w.engine == "sglang" and "extra_engine_args" in w.settings for w in dep.workers):
        from . import sglang_config

        sglang_config.config_refs(dep)


def link_disagg_configs(dep: Deployment, configs: dict) -> None:
    """`trtllm-serve disaggregated -c FILE` whose FILE the script writes: the router's `context_servers.urls` and
    `generation_servers.urls` (every URL, as `router_prefill` / `router_decode`), which name its servers
    (tensorrt_llm/llmapi/disagg_utils.py extract_ctx_gen_cfgs, see trtllm.py)."""
    for w in dep.workers:
        if w.program != "trtllm-disagg-server":
            continue
        name = w.known("config_file")
        found = configs.get(os.path.basename(name)) if isinstance(name, str) else None
        if found is None:
            continue
        inner, base, cfg, to_file = found
        from .trtllm import instances_issues

        dep.issues.extend(instances_issues(inner, base, cfg, to_file))
        if isinstance(cfg, dict) and cfg.get("disagg_cluster"):
            # servers join the router's cluster at run time (--disagg_cluster_uri): the sections' urls are not read
            w.settings["disagg_cluster"] = Setting(True, to_file(Span(*inner.marks.key(base + ("disagg_cluster",)))), "disagg_cluster")
        for key, role in (("context_servers", "prefill"), ("generation_servers", "decode")):
            block = cfg.get(key) if isinstance(cfg, dict) else None
            urls = block.get("urls") if isinstance(block, dict) else None
            if isinstance(urls, list):
                spans = [to_file(Span(*inner.marks.value(base + (key, "urls", i)))) for i in range(len(urls))]
                w.settings[f"router_{role}"] = Setting([(str(u), sp) for u, sp in zip(urls, spans) if isinstance(u, str)], spans[0] if spans else None, f"{key}.urls")
