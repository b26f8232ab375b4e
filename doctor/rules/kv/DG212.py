from __future__ import annotations

from disagg.schemas import knowledge
from disagg.schemas.knowledge import version_key

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import (
    ASCEND,
    ASCEND_PLUGIN_CONNECTORS,
    DYNAMO_PATCHED,
    dynamo_patched,
    engine_releases,
    every,
    leaves,
    resolve,
    runs_vllm_ascend,
    vllm_releases,
    worker_uses,
)
from .._helpers import DYNAMO_VLLM_CONNECTOR_WORDS
from .._helpers import dynamo_patch_within as _within
from .._spelling import near_miss


def _near(word: str, names, cutoff: float = 0.85) -> str | None:
    """The registered name `word` misspells (every connector name ends in Connector, so the bar is high)."""
    import difflib  # only for a name no table knows (with heapq, ~1.5 ms of every cold start otherwise)

    by_lower = {n.lower(): n for n in names}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[match[0]] if match else None


def _extends(word: str, known: str) -> bool:
    """`MooncakeConnectorV1` or `NeuronNixlConnector` is another class than `MooncakeConnector`/`NixlConnector`, not a
    misspelling of it."""
    a, b = word.lower(), known.lower()
    return a != b and (a.startswith(b) or a.endswith(b) or b.startswith(a) or b.endswith(a))


def _pd_by_flags(w) -> bool:
    """The worker's own flags make it a prefill or decode worker: only then does dynamo.vllm resolve a P/D protocol."""
    mode = w.known("disaggregation_mode")
    return (isinstance(mode, str) and mode.lower() in ("prefill", "decode")) or "is-prefill-worker" in w.flags or "is-decode-worker" in w.flags


def _every_vllm_name() -> frozenset[str]:
    return knowledge.transport_names("vllm", frozenset(knowledge.transport_releases_read("vllm")))


def _span(releases: frozenset[str]) -> str:
    ordered = sorted(releases, key=version_key)
    return ordered[0] if len(ordered) == 1 else f"{ordered[0]}..{ordered[-1]}"


class DG212(Rule):
    """## What it does
    Reports a vLLM `kv_connector` that the connector factory of the release the file targets does not register (and
    no `kv_connector_module_path` supplies), with the nearest registered name; a NixlConnector `transfer_mode` other
    than `pull` or `push` where vLLM reads it (0.34); a `dynamo.vllm` prefill/decode worker whose connector has no
    prefill/decode protocol in the Dynamo release (its `KV_CONNECTOR_PROTOCOLS`, 1.3 on: e.g. vLLM's
    `NixlPushConnector`, which Dynamo rejects); and an SGLang `--disaggregation-transfer-backend` that is none
    of that release's choices (an info from 0.5.2, where a plugin may add choices); a `dynamo.vllm` `--connector`
    word other than nixl, lmcache, kvbm, null and none (Dynamo 0.5-0.9 raise "Invalid connector(s)" at start). The registered names are read from every release's `KVConnectorFactory.register_connector`
    calls and SGLang's choices (generated facts). A class loaded from `kv_connector_module_path` is not in any
    registry, and a vLLM plugin may register names of its own (vllm-ascend's `MooncakeConnectorV1`): where Dynamo's
    patched vLLM (0.7.2/0.8.4) may run, its `DynamoNixlConnector` counts as a registered name to misspell. A name that is
    neither a misspelling of a registered one nor registered in another release is reported as an info saying what
    could not be compared.

    ## Why is this bad?
    vLLM raises "Unsupported connector type" at start for a name it does not register, and SGLang's argument parser
    rejects a backend that is not a choice: the worker never serves. A connector registered in another release than
    the one deployed fails the same way.

    ## Example
    ```bash
    vllm serve m --kv-transfer-config '{"kv_connector":"P2pNcclConector","kv_role":"kv_producer"}'
    ```

    ## Use instead
    ```bash
    vllm serve m --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_producer"}'
    ```
    """

    code = "DG212"
    name = "kv-connector-unregistered"
    severity = Severity.ERROR
    also = {Severity.WARNING: "on a worker the file runs with vllm-ascend (its image, its nightly harness), a kv_connector name that "
                              "no vLLM or vllm-ascend release registers and that is one edit from one they do",
            Severity.INFO: "a connector class loaded from kv_connector_module_path, which no registry describes; a kv_connector name "
                           "that is no misspelling of a registered one (a vLLM plugin may register it); an SGLang backend that "
                           "is no built-in choice where a plugin may add choices (add_disagg_transfer_backend_choices, 0.5.2 on)"}

    def check(self, ctx):
        for w in ctx.deployment.workers:
            if not w.is_engine:
                continue
            if w.engine == "vllm":
                yield from self._vllm(ctx, w)
                if w.program == "dynamo.vllm":
                    yield from self._connector_flag(ctx, w)
                if w.program == "dynamo.vllm" and _pd_by_flags(w):
                    yield from self._dynamo(ctx, w)
            elif w.engine == "sglang":
                yield from self._sglang(ctx, w)

    def _vllm(self, ctx, w):
        uses = worker_uses(w)
        if not uses:
            return
        releases, described = vllm_releases(w)
        where = w.where("kv_connector")
        # a class from a module is worth a note only when nothing else the worker runs can be compared (Dynamo's
        # PdConnector[DynamoConnector, NixlConnector] is compared through its NixlConnector)
        comparable = releases is not None and any(resolve(u, releases, described).status == "registered" for u in leaves(uses))
        for use in every(uses):
            if use.module_path:
                if not use.children and not comparable:  # a wrapper is compared through the connectors it runs
                    yield ctx.finding(self, where, f"{w.name}: kv_connector {use.name!r} is a class from {use.module_path!r} (kv_connector_module_path), "
                                      "which is not in this run's files: what it transfers with cannot be compared with the other side's connector, "
                                      "so the connector checks say nothing about it", worker=w, severity=Severity.INFO,
                                      fix=Fix("check by hand that the other side runs a connector this class can exchange KV with"))
                continue
            if releases is None:
                continue
            r = resolve(use, releases, described)
            if r.status == "registered":
                yield from self._transfer_mode(ctx, w, use, releases, described)
                continue
            known = knowledge.transport_names("vllm", releases)
            if dynamo_patched(releases):  # a candidate is Dynamo's patched vLLM: its own connector's name is one to misspell
                known = known | {DYNAMO_PATCHED}
            near = _near(use.name, known)
            elsewhere = knowledge.transport_in("vllm", use.name)
            also = f"; it is registered in vLLM {_span(elsewhere)} only" if elsewhere else ""
            hint = f"; did you mean {near!r}?" if near else ""
            if near == DYNAMO_PATCHED:
                also += f", nor the name Dynamo's patched vLLM 0.7.2/0.8.4 takes outside its factory [{knowledge.fact('vllm.dynamo_patched_connector').source}]"
            if elsewhere or (near and not _extends(use.name, near) and use.name not in ASCEND_PLUGIN_CONNECTORS):
                yield ctx.finding(self, where, f"{w.name}: kv_connector {use.name!r} is {r.why}{also}: vLLM exits at start "
                                  f"(\"Unsupported connector type\"){hint}", worker=w,
                                  fix=Fix(f"use {near!r}" if near else "use a connector the deployed vLLM registers, or give kv_connector_module_path"))
            elif (ascend := runs_vllm_ascend(w)) and use.name not in ASCEND_PLUGIN_CONNECTORS and \
                    (meant := near_miss(use.name, ASCEND_PLUGIN_CONNECTORS) or near_miss(use.name, _every_vllm_name())):
                yield from self._ascend_misspelt(ctx, w, use.name, meant, ascend, described)
            else:
                # vLLM plugins (platform and general plugins, loaded before the engine builds its connector) may register
                # more names: one that is no misspelling of a built-in may be theirs (vllm-ascend's MooncakeConnectorV1)
                yield ctx.finding(self, where, f"{w.name}: kv_connector {use.name!r} is {r.why}: valid only if a vLLM plugin registers it, "
                                  "else vLLM exits at start (\"Unsupported connector type\"); the connector checks cannot compare it",
                                  worker=w, severity=Severity.INFO, fix=Fix("check that the image installs the plugin that registers this connector"))

    def _ascend_misspelt(self, ctx, w, name: str, meant: str, ascend: str, described: str):
        """A name neither vLLM nor vllm-ascend registers in any release read, one edit from one they do, on a worker
        the file runs with vllm-ascend: a warning, since a newer plugin build than the tags read may add names (it
        adds words of its own, it does not respell its names)."""
        read = knowledge.transport_releases_read(ASCEND)
        yield ctx.finding(self, w.where("kv_connector"), f"{w.name}: kv_connector {name!r} is registered neither in {described} "
                          f"nor by any vllm-ascend release from {read[0]} to {read[-1]}, which runs it ({ascend}) "
                          f"[{knowledge.transport_source(ASCEND, frozenset(read))}]: vLLM exits at start (\"Unsupported connector type\"); "
                          f"did you mean {meant!r}?", worker=w, severity=Severity.WARNING, fix=Fix(f"use {meant!r}"))

    def _transfer_mode(self, ctx, w, use, releases, described):
        mode = use.extra.get("transfer_mode")
        modal = knowledge.transport_pattern("vllm", "nixl_transfer_mode")
        if use.name == "NixlConnector" and mode is not None and releases <= modal and mode not in ("pull", "push"):
            yield ctx.finding(self, w.where("kv_connector"), f"{w.name}: NixlConnector transfer_mode {mode!r} is neither 'pull' nor 'push': {described} "
                              f"raises ValueError at start [{knowledge.transport_source('vllm', releases)}]", worker=w,
                              fix=Fix("set kv_connector_extra_config.transfer_mode to 'pull' (the default) or 'push'"))

    def _dynamo(self, ctx, w):
        """dynamo.vllm resolves a prefill/decode protocol from the connector's name (KV_CONNECTOR_PROTOCOLS, 1.3 on)."""
        uses = worker_uses(w)
        read = frozenset(knowledge.transport_releases_read("dynamo"))
        cands = w.target.releases("dynamo")
        if not uses or not read or not cands or cands - read:
            return  # no kv-transfer-config (Dynamo defaults to NIXL), or a release without (or unread) protocol table
        top = uses[0]
        names = knowledge.transport_names("dynamo", cands)
        wrappers = {n for n in names if ("dynamo.vllm.kv_connector_protocols", "wrapper") in knowledge.transport_classes("dynamo", n, cands)}
        protocols = sorted(names - wrappers)
        source = knowledge.transport_source("dynamo", cands)
        if top.name in wrappers:
            if any(c.name in protocols for c in top.children):
                return
            what = f"{top.name} has no PD-capable sub-connector ({', '.join(c.name for c in top.children) or 'none'})"
        elif top.name in names:
            return
        else:
            what = f"kv_connector {top.name!r} has no prefill/decode protocol"
        yield ctx.finding(self, w.where("kv_connector"), f"{w.name}: {what} in {w.target.describe('dynamo')}, which supports {', '.join(protocols)} "
                          f"[{source}]: dynamo.vllm raises ValueError (\"Unsupported kv_connector\") at request setup", worker=w,
                          fix=Fix(f"use one of {', '.join(protocols)} for the prefill/decode hand-off"))

    def _connector_flag(self, ctx, w):
        """dynamo.vllm 0.5.0..0.9.1 check --connector against its own list and raise ValueError at start for any other
        word, or for none/null with another (fact dynamo.vllm.connector_flag_values); from 1.0.0 the flag itself makes
        it raise (pattern vllm.connector_flag_rejected, DG603). Judged where every candidate release is one or the other.
        An error where the file names the Dynamo release; where it does not, a build from a branch may take more words:
        a warning for a near miss of an accepted word, else an info."""
        s = w.settings.get("connector")
        if s is None or not s.known:
            return
        words = [c.strip().lower() for c in str(s.value).replace(",", " ").split()]
        bad = [c for c in words if c not in DYNAMO_VLLM_CONNECTOR_WORDS]
        combined = not bad and len(words) > 1 and bool({"none", "null"} & set(words))
        if not bad and not combined:
            return
        fact = knowledge.fact("dynamo.vllm.connector_flag_values")
        rejected = knowledge.pattern("dynamo", "vllm.connector_flag_rejected").releases
        placed = _within(w, fact.releases)
        if not placed and knowledge.verdict(w.target, "dynamo", fact.releases | rejected) is not True:
            return
        only_list = placed or knowledge.verdict(w.target, "dynamo", fact.releases) is True
        if combined:
            what, severity, hint = "'none' and 'null' cannot be combined with other connectors", None, ""
        else:
            meant = {c: near_miss(c, DYNAMO_VLLM_CONNECTOR_WORDS) for c in bad}
            what = f"{', '.join(repr(c) for c in bad)} is no connector dynamo.vllm takes ({', '.join(sorted(DYNAMO_VLLM_CONNECTOR_WORDS))})"
            hint = "".join(f"; did you mean {m!r}?" for m in meant.values() if m)
            severity = None if w.target.named("dynamo") or placed else (Severity.WARNING if all(meant.values()) else Severity.INFO)
        then = "it raises ValueError (\"Invalid connector(s)\") at start, so this worker never serves" if only_list else \
            "0.5.0..0.9.1 raise ValueError (\"Invalid connector(s)\") at start and 1.0.0 on refuse --connector itself, so this worker never serves"
        unsure = "" if severity is None else " (the file does not say which Dynamo build runs: one from a branch may take more words)"
        where = f"Dynamo {w.settings['dynamo_image_release'].value} ({w.settings['dynamo_image_release'].origin}), a patch of a release in " \
            f"{_span(fact.releases)}" if placed else w.target.describe("dynamo")
        yield ctx.finding(self, s.span, f"{w.name}: --connector {s.value}: {what} in {where}: {then}{unsure}{hint} "
                          f"[{fact.source}]", worker=w, severity=severity,
                          fix=Fix("use --connector nixl (or lmcache, kvbm, null, none)" if only_list else "use --kv-transfer-config"))

    def _sglang(self, ctx, w):
        s = w.settings.get("transfer_backend")
        read = frozenset(knowledge.transport_releases_read("sglang"))
        if s is None or not s.known or not read:
            return
        cands, pinned_by = engine_releases(w, "sglang")
        if cands - read:
            return  # a release whose choices we have not read
        backend = str(s.value)
        known = knowledge.transport_names("sglang", cands)
        if backend in known:
            return
        plugin = bool(knowledge.transport_pattern("sglang", "choices_extensible") & cands)
        elsewhere = knowledge.transport_in("sglang", backend)
        also = f"; it is a choice in SGLang {_span(elsewhere)} only" if elsewhere else ""
        near = _near(backend, known)
        yield ctx.finding(self, s.span, f"{w.name}: --disaggregation-transfer-backend {backend!r} is not a choice of {f'SGLang {next(iter(cands))} ({pinned_by})' if pinned_by else w.target.describe('sglang')} "
                          f"[{knowledge.transport_source('sglang', cands)}]{also}: "
                          + ("it is valid only if an installed plugin adds it (add_disagg_transfer_backend_choices), else the server exits at start"
                             if plugin else "the server exits at start")
                          + (f"; did you mean {near!r}?" if near else ""), worker=w, severity=Severity.INFO if plugin else None,
                          fix=Fix(f"use {near!r}" if near else "use one of " + ", ".join(sorted(known))))
