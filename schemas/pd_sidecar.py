"""llm-d's P/D routing sidecar (`/app/pd-sidecar`, llm-d/llm-d-router cmd/pd-sidecar): what its command line says,
beside the engine it fronts in one pod."""

from __future__ import annotations

from . import knowledge
from .cmdline import Command
from .model import Setting, Worker

PROGRAM = "llm-d-routing-sidecar"


def apply(w: Worker, cmd: Command) -> None:
    """llm-d's routing sidecar: its --kv-connector (--connector up to 0.6, and from 0.7 where --kv-connector is not
    given) names its P/D protocol (nixlv2, sglang, ...), no engine's KV connector, so it is its own setting
    (llm-d/llm-d-router pkg/sidecar/proxy/options.go Complete() at v0.7.0 6f5cb933 and v0.10.0 71f4f099). A flag that
    only some releases define narrows them (the generated llm-d-router flag table)."""
    w.settings.pop("connector", None)
    name = "kv-connector" if "kv-connector" in cmd.flags else "connector" if "connector" in cmd.flags else None
    if name is not None:
        # w.flags holds the value as apply_command read it (set at run time or not), cmd.flags where it is written
        w.settings["sidecar_kv_connector"] = Setting(w.flags[name].value, cmd.flags[name].span, f"--{name}")
    for flag in cmd.flags:  # a name set at run time is in no release's table, so it narrows nothing
        knowledge.evidence_from_flag(w.target, "llm-d-router", w.program, f"--{flag}")
