from __future__ import annotations

import difflib
import functools

from disagg.schemas import knowledge, lightllm
from disagg.schemas.knowledge import version_key

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import engine_releases, vllm_releases
from .._spelling import near_miss as _near_miss

# The values each release accepts are generated (transports.json): "vllm-kv-role" from KVTransferConfig.kv_role's
# Literal (or the list its __post_init__ checks), with the pattern "rejects_other" where __post_init__ raises
# ValueError('Unsupported kv_role'); "sglang-disagg-mode" from --disaggregation-mode's argparse choices (server_args.py,
# or the dataclass field's Literal, which sglang's add_cli_args_from_dataclass turns into choices: sgl-project/sglang
# 0116c606 python/sglang/srt/arg_groups/arg_utils.py).
# "dynamo-trtllm-disagg-mode" from dynamo.trtllm's own --disaggregation-mode choices per Dynamo release (0.4-0.9
# utils/trtllm_utils.py, 1.0 on backend_args.py: `[mode.value for mode in DisaggregationMode]`, plus `agg`/`pd` from
# 1.3; Dynamo's add_argument passes `choices` to argparse with type str, so a value off the list exits at start).
_VLLM, _SGLANG, _TRTLLM = "vllm-kv-role", "sglang-disagg-mode", "dynamo-trtllm-disagg-mode"
_WHO = {_VLLM: "vLLM", _SGLANG: "SGLang", _TRTLLM: "Dynamo"}


@functools.cache  # asked once per worker with the same few candidate sets
def _read(system: str, cands: frozenset[str]) -> frozenset[str] | None:
    """The candidates whose values we have read; None when a candidate is newer than our table (it may accept more)."""
    read = knowledge.transport_releases_read(system)
    if not read or not cands:
        return None
    if any(version_key(c) > version_key(read[-1]) for c in cands):
        return None
    relevant = cands & frozenset(read)
    return relevant or None


def _span(system: str) -> str:
    read = knowledge.transport_releases_read(system)
    return f"from {read[0]} to {read[-1]}" if len(read) > 1 else (read[0] if read else "")


def _severity(named: bool, system: str, value: str, extra: frozenset[str]) -> tuple[Severity | None, str]:
    """Error where the file names the engine release (an image tag, a pinned package). Where it does not, a build
    from a branch or a fork may take values no release does (an SGLang branch took `--disaggregation-mode encode`,
    sgl-project/sglang#12665): a warning when no release we have read accepts the value and it is a near miss of one
    that is accepted (a fork adds modes, it does not respell them), else an info."""
    if named:
        return None, ""
    everywhere = knowledge.transport_names(system, frozenset(knowledge.transport_releases_read(system))) | extra
    who = _WHO[system]
    if value not in everywhere and _near_miss(value, everywhere):
        return Severity.WARNING, f" (no {who} release {_span(system)} accepts it and it misspells one that does; the file does not say which build runs)"
    return Severity.INFO, " (no release accepts it, but the file does not say which build runs: a fork or branch may)"


# dynamo.sglang hands --disaggregation-mode to SGLang's own parser (ServerArgs.add_cli_args, then parse_args on the
# arguments Dynamo's parser left: ai-dynamo wheels 0.4.1..1.6.1, dynamo/sglang/args.py), after mapping its own modes
# from 1.3: `agg` and `pd` become `null`, `encode` makes an encode worker (_normalize_multimodal_disaggregation_args).
# Those three are taken as accepted in every release, so only values no release takes are judged.
_DYNAMO_SGLANG_MODES = frozenset({"agg", "pd", "encode"})


def _reaches_vllm(w) -> bool:
    """A dynamo.vllm worker's --kv-transfer-config is vLLM's own from Dynamo 0.5 on (create_kv_transfer_config uses the
    user's; ai-dynamo wheels 0.5.0..1.6.1 dynamo/vllm/args.py); 0.4 replaced it with NixlConnector/kv_both (generated
    pattern vllm.nixl_connector_forced). Judged only where every candidate Dynamo release is one that passes it on."""
    forced = knowledge.pattern("dynamo", "vllm.nixl_connector_forced").releases
    cands = w.target.releases("dynamo")
    return bool(cands) and "dynamo" in w.target.candidates and all(version_key(c) > version_key(max(forced, key=version_key)) for c in cands)


def _named(w, engine: str) -> bool:
    """The file names the engine release, or names the one Dynamo release whose wheel pins it (a dynamo.<engine> worker)."""
    return w.target.named(engine) or (w.program.startswith("dynamo.") and bool(engine_releases(w, engine)[1]) and w.target.named("dynamo"))


def _near(value: str, accepted: frozenset[str]) -> str:
    match = _near_miss(value, accepted) or next(iter(difflib.get_close_matches(value, sorted(accepted), n=1, cutoff=0.6)), None)
    return f"; did you mean {match!r}?" if match else ""


class DG214(Rule):
    """## What it does
    Reports a role value the engine refuses at start: a vLLM `kv_role` other than the values `KVTransferConfig`
    accepts in the targeted release (`kv_producer`, `kv_consumer`, `kv_both` in every release from 0.6.5 to 0.34; for
    `dynamo.vllm` only where the Dynamo release is 0.5 or later, which hands the user's config to vLLM), an SGLang or
    `dynamo.sglang` (which passes it on to SGLang's parser, after mapping `agg`, `pd` and `encode` from 1.3)
    `--disaggregation-mode` that is none of its choices (`null`, `prefill`, `decode`), and a `dynamo.trtllm`
    `--disaggregation-mode` that is none of Dynamo's own choices for it (`prefill_and_decode`, `prefill`, `decode`,
    `encode` from 0.5, `agg` and `pd` from 1.3; `prefill_and_decode` until 1.3), and a LightLLM `--run_mode` that is
    none of its choices (`normal`, `prefill`, `decode`, `pd_master`, `config_server`). The lists are read from each
    release's source, and the values are compared as the programs compare them (case matters).

    ## Why is this bad?
    vLLM raises `ValueError: Unsupported kv_role` while it builds its config, and SGLang's (or Dynamo's) argument parser
    exits with "invalid choice": the worker never starts, so the side it was meant to serve has no capacity at all. The
    misspelling is easy to miss because the value still reads as a role to a person (`kv_producter`, `Prefill`).
    Where the file does not say which engine release runs (no image tag or pinned package), a build from a branch or
    fork may accept values that no release does: the finding is a warning when the value misspells an accepted one
    (a case or `-`/`_` difference, or one edit from it: `prefil`, `kv_consumr`) and no release we have read accepts
    it, naming the releases read; any other value (`encode`, a fork's own mode) is an info.

    ## Example
    ```yaml
    containers:
      - image: vllm/vllm-openai:v0.11.0
        args: [--kv-transfer-config, '{"kv_connector":"P2pNcclConnector","kv_role":"kv_producter"}']
    ```

    ## Use instead
    ```yaml
    containers:
      - image: vllm/vllm-openai:v0.11.0
        args: [--kv-transfer-config, '{"kv_connector":"P2pNcclConnector","kv_role":"kv_producer"}']
    ```
    """

    code = "DG214"
    name = "role-value-rejected"
    severity = Severity.ERROR
    also = {Severity.WARNING: "a value no release we have read accepts, one edit (or a case or -/_ difference) from an accepted one, where "
                              "the file does not name the engine release",
            Severity.INFO: "any other value no release accepts where the file does not name the engine release (a fork or branch build "
                           "may accept it)"}

    def check(self, ctx):
        for w in ctx.deployment.workers:
            if w.program in ("vllm", "dynamo.vllm"):
                s = w.settings.get("kv_role")
                if s is None or s.origin != "kv-transfer-config kv_role" or (w.program == "dynamo.vllm" and not _reaches_vllm(w)):
                    continue
                cands, described = vllm_releases(w)
                releases = _read(_VLLM, cands or frozenset())
                if releases is not None and releases <= knowledge.transport_pattern(_VLLM, "rejects_other"):
                    yield from self._check(ctx, w, s, _VLLM, releases, f"kv_role {s.value!r} is not one vLLM accepts",
                                           "vLLM raises 'Unsupported kv_role' at start, so this worker never serves", f"{described}; ",
                                           _named(w, "vllm"))
            elif w.program in ("sglang", "dynamo.sglang"):
                s = w.settings.get("disaggregation_mode")
                if s is None or s.origin.startswith("env") or (w.program == "dynamo.sglang" and s.origin != "--disaggregation-mode"):
                    continue
                cands, pinned_by = engine_releases(w, "sglang")
                releases = _read(_SGLANG, cands)
                extra = _DYNAMO_SGLANG_MODES if w.program == "dynamo.sglang" else frozenset()
                if releases is not None:
                    yield from self._check(ctx, w, s, _SGLANG, releases, f"--disaggregation-mode {s.value!r} is none of SGLang's choices"
                                           + (f" nor a mode Dynamo maps ({', '.join(sorted(extra))})" if extra else ""),
                                           "its argument parser exits at start, so this server never runs",
                                           f"SGLang {next(iter(releases))} ({pinned_by}); " if pinned_by else "", _named(w, "sglang"), extra)
            elif w.program == "lightllm":
                yield from self._lightllm(ctx, w)
            elif w.program == "dynamo.trtllm":
                s = w.settings.get("disaggregation_mode")
                if s is None or s.origin != "--disaggregation-mode":
                    continue
                releases = _read(_TRTLLM, w.target.releases("dynamo"))
                if releases is not None:
                    yield from self._check(ctx, w, s, _TRTLLM, releases, f"--disaggregation-mode {s.value!r} is none of dynamo.trtllm's choices",
                                           "Dynamo's argument parser exits at start, so this worker never runs",
                                           f"{w.target.describe('dynamo')}; ", w.target.named("dynamo"))

    def _lightllm(self, ctx, w):
        """LightLLM's `--run_mode` choices (schemas/lightllm.py). Only one LightLLM source has been read and a script
        does not say which build runs: a warning for a misspelt mode, an info for any other word (a newer mode)."""
        s = w.settings.get("run_mode")
        if s is None or not s.known or not isinstance(s.value, str) or s.value in lightllm.RUN_MODES:
            return
        accepted = frozenset(lightllm.RUN_MODES)
        if _near_miss(s.value, accepted):
            severity, unsure = Severity.WARNING, " (it misspells one; the file does not say which LightLLM build runs)"
        else:
            severity, unsure = Severity.INFO, " (the file does not say which LightLLM build runs: a newer one may take it)"
        yield ctx.finding(self, s.span, f"{w.name}: --run_mode {s.value!r} is none of LightLLM's run modes ({', '.join(lightllm.RUN_MODES)}): "
                          f"its argument parser exits at start, so this server never runs{unsure}{_near(s.value, accepted)} "
                          f"[{lightllm.RUN_MODES_SOURCE}]", worker=w, severity=severity,
                          fix=Fix(f"use --run_mode {' or '.join(m for m in lightllm.RUN_MODES if m != 'normal')}"))

    def _check(self, ctx, w, s, system: str, releases: frozenset[str], what: str, then: str, described: str, named: bool,
               extra: frozenset[str] = frozenset()):
        if not s.known or not isinstance(s.value, str):
            return
        accepted = knowledge.transport_names(system, releases)
        if not accepted or s.value in accepted | extra:
            return
        severity, unsure = _severity(named, system, s.value, extra)
        listed = ", ".join(sorted(accepted))
        fix = f"set kv_role to one of {listed}" if system == _VLLM else \
            f"use --disaggregation-mode {' or '.join(a for a in sorted(accepted) if a not in ('null', 'prefill_and_decode'))}"
        yield ctx.finding(self, s.span, f"{w.name}: {what} ({listed}): {then}{unsure}{_near(s.value, accepted)} "
                          f"[{described}{knowledge.transport_source(system, releases)}]", worker=w, severity=severity, fix=Fix(fix))
