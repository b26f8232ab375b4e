"""Regenerate `schemas/knowledge/generated/*.json` from the released packages themselves. Run by hand, never in CI.

    python tools/gen_knowledge.py [--cache DIR] [--only dynamo|sglang|vllm|releases|transports] [--mirror vllm=PATH]

For every release of a package on PyPI this downloads the wheel (`pip download --no-deps`, cached), reads its
Python sources statically with `ast` (nothing is imported or executed) and records:

* **flags**: every `--flag` a program defines (`parser.add_argument("--x")`, Dynamo's `add_argument(g, flag_name=...)`
  and `add_negatable_bool_argument`, SGLang's `{"flags": [...]}` tables), with its default when it is a literal,
  and whether its help text calls it deprecated;
* for vLLM, whose wheels are hundreds of MB, only the modules that define its flags are read, straight out of the
  wheel on PyPI with HTTP range requests (the zip's directory, then those members): `EngineArgs` and
  `AsyncEngineArgs` fields (each is a `--field-name` flag) and every `--flag` string of `vllm/engine/arg_utils.py`;
* **patterns**: facts that are code, not flags (Dynamo's forced NixlConnector in 0.4, its port reservations, the
  `--connector` rejection), each a regular expression over one module and the sentence it stands for.

* **vLLM environment** (`--only vllm-env`, `tools/knowledge_env.py`): every `VLLM_*` variable of `vllm/envs.py` and its
  default per release;
* **Dynamo's engine pins** (`--only dynamo-pins`, `tools/knowledge_pins.py`): the vLLM, SGLang, TensorRT-LLM and
  NIXL releases each ai-dynamo wheel pins in its extras;
* **llm-d router** (`--only llm-d-router --mirror llm-d-router=PATH`, `tools/knowledge_llmd.py`): the P/D routing
  sidecar's flags at each release tag of a local git mirror of llm-d/llm-d-router;
* **transports** (`--only transports`, `tools/knowledge_transports.py`): per pinned release, vLLM's registered KV
  connector names, SGLang's transfer backends and TensorRT-LLM's cache transceiver backends, from a local git mirror
  (`--mirror`) or the wheels.

The output holds version ranges and the module each fact was read from; no upstream code is copied.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "schemas" / "knowledge" / "generated"

# program -> module folders whose flags it accepts (shared argument groups included)
SYSTEMS = {
    "dynamo": {
        "package": "ai-dynamo",
        "min": "0.4.0",  # 0.1-0.3 were the SDK era: no dynamo.vllm module (their example workers are curated facts)
        "programs": {
            "dynamo.vllm": ("dynamo/vllm/", "dynamo/common/"),
            "dynamo.sglang": ("dynamo/sglang/", "dynamo/common/"),
            "dynamo.trtllm": ("dynamo/trtllm/", "dynamo/common/"),
            "dynamo.frontend": ("dynamo/frontend/", "dynamo/common/"),
        },
        "patterns": {
            "vllm.nixl_connector_forced": (
                "dynamo/vllm/args.py", r'kv_connector="NixlConnector",\s*kv_role="kv_both"',
                "dynamo.vllm gives every worker KVTransferConfig(NixlConnector, kv_both) in overwrite_args, replacing the user's"),
            "vllm.connector_flag_default_nixl": (
                "dynamo/vllm/args.py", r'default=\[\s*"nixl"\s*\]',
                "dynamo.vllm's --connector defaults to [\"nixl\"], which builds a NixlConnector kv-transfer-config"),
            "vllm.connector_flag_rejected": (
                "dynamo/vllm/args.py", r"def _reject_connector_flag",
                "dynamo.vllm raises at start when --connector (or DYN_CONNECTOR) is set; a prefill worker needs --kv-transfer-config"),
            "vllm.side_channel_port_reserved": (
                "dynamo/vllm/args.py", r"nixl_side_channel_port",
                "dynamo.vllm reserves a NIXL side-channel port per worker (configure_ports_with_etcd)"),
            "vllm.side_channel_host_set": (
                "dynamo/vllm/", r"VLLM_NIXL_SIDE_CHANNEL_HOST",
                "dynamo.vllm sets VLLM_NIXL_SIDE_CHANNEL_HOST to the worker's own address"),
            "vllm.unflagged_worker_registers_aggregated": (
                "dynamo/vllm/", r"WorkerType\.Aggregated",
                "a dynamo.vllm worker without --disaggregation-mode decode registers as WorkerType.Aggregated"),
            "sglang.bootstrap_port_reserved": (
                "dynamo/sglang/args.py", r"def _reserve_disaggregation_bootstrap_port",
                "dynamo.sglang reserves a free --disaggregation-bootstrap-port when none is given"),
        },
    },
    "sglang": {
        "package": "sglang",
        "min": "0.4.6",
        "programs": {"sglang": ("sglang/srt/server_args.py",)},
        "dataclass_defaults": ("sglang/srt/server_args.py", "ServerArgs"),
        # From 0.5.14 SGLang derives its flags from annotated config fields (`page_size: A[...] = None` becomes
        # --page-size) instead of add_argument calls: read those fields as flags.
        "field_flags": ("sglang/srt/server_args.py", "sglang/srt/arg_groups/fields/"),
        "patterns": {},
    },
}

# vLLM: flags read from a few members of each wheel (remote_members), never the whole wheel.
VLLM = {"package": "vllm", "min": "0.6.0", "members": ("vllm/engine/arg_utils.py",), "classes": ("EngineArgs", "AsyncEngineArgs")}

# Packages whose release list alone is recorded (image tags and pins name them; facts about them are curated with a
# source in schemas/knowledge/curated.json).
RELEASE_LISTS = {"trtllm": ("tensorrt-llm", "0.10.0")}

from knowledge_sources import _RangeFile, releases, remote_members, version_key, wheel, wheel_url  # noqa: E402,F401


def vllm_flags(sources: dict[str, str]) -> dict[str, dict]:
    """`--flag` -> {default?} for vLLM: the engine-argument dataclasses' fields and every explicit `--flag` string."""
    out: dict[str, dict] = {}
    for text in sources.values():
        for flag, info in flags_in_source(text).items():
            out.setdefault(flag, info)
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in VLLM["classes"]):
            for item in cls.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and not item.target.id.startswith("_"):
                    info = {}
                    if item.value is not None:
                        value = _literal(item.value)
                        if value is not None or (isinstance(item.value, ast.Constant) and item.value.value is None):
                            info["default"] = value
                    out.setdefault("--" + item.target.id.replace("_", "-"), info)
    return out


def _literal(node: ast.AST):
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (str, int, float, bool, list, tuple)) or value is None else None


def flags_in_source(text: str) -> dict[str, dict]:
    """`--flag` -> {default?, deprecated?} for every flag the module defines."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    out: dict[str, dict] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        kw: dict[str, ast.AST] = {}
        negatable = False
        if isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id if isinstance(node.func, ast.Name) else ""
            if func not in ("add_argument", "add_negatable_bool_argument", "add_arg"):
                continue
            negatable = func == "add_negatable_bool_argument"
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            for a in node.args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--"):
                    names.append(a.value)
            if "flag_name" in kw and isinstance(kw["flag_name"], ast.Constant) and isinstance(kw["flag_name"].value, str):
                names.append(kw["flag_name"].value)
        elif isinstance(node, ast.Dict):
            keys = {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
            flags = keys.get("flags")
            if isinstance(flags, (ast.List, ast.Tuple)):
                names = [e.value for e in flags.elts if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value.startswith("--")]
                kw = {k: v for k, v in keys.items() if isinstance(k, str)}
        for name in names:
            info: dict = {}
            if "default" in kw:
                default = _literal(kw["default"])
                if default is not None or (isinstance(kw["default"], ast.Constant) and kw["default"].value is None):
                    info["default"] = default
            if "action" in kw and isinstance(kw["action"], ast.Constant):
                info["action"] = kw["action"].value
            help_text = _literal(kw["help"]) if "help" in kw else None
            if isinstance(help_text, str) and re.search(r"\bdeprecated\b", help_text, re.I):
                info["deprecated"] = True
            out[name] = info
            if negatable:
                out["--no-" + name[2:]] = {}
    return out


def dataclass_defaults(text: str, cls: str) -> dict[str, object]:
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            out = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None:
                    value = _literal(item.value)
                    if value is not None or (isinstance(item.value, ast.Constant) and item.value.value is None):
                        out[item.target.id] = value
            return out
    return {}


def field_flags(text: str) -> dict[str, dict]:
    """`--field-name` -> {default} for every annotated field with a value in a class body."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    out: dict[str, dict] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for item in cls.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None and not item.target.id.startswith("_"):
                value = _literal(item.value)
                info = {"default": value} if value is not None or (isinstance(item.value, ast.Constant) and item.value.value is None) else {}
                out["--" + item.target.id.replace("_", "-")] = info
    return out


def read_release(path: Path, spec: dict) -> tuple[dict[str, dict], dict[str, bool]]:
    flags: dict[str, dict] = {}
    patterns = {}
    with zipfile.ZipFile(path) as zf:
        sources = {n: zf.read(n).decode("utf-8", "replace") for n in zf.namelist() if n.endswith(".py") and "/tests/" not in n}
    for program, prefixes in spec["programs"].items():
        found: dict[str, dict] = {}
        for name, text in sources.items():
            if name.startswith(prefixes):
                for flag, info in flags_in_source(text).items():
                    found.setdefault(flag, info)
        if "field_flags" in spec and not any(f.startswith("--disaggregation") for f in found):
            for name, text in sources.items():
                if name.startswith(spec["field_flags"]):
                    for flag, info in field_flags(text).items():
                        found.setdefault(flag, info)
        if "dataclass_defaults" in spec:
            module, cls = spec["dataclass_defaults"]
            if module in sources:
                defaults = dataclass_defaults(sources[module], cls)
                for flag, info in found.items():
                    key = flag[2:].replace("-", "_")
                    if key in defaults and "default" not in info:
                        info["default"] = defaults[key]
        flags[program] = found
    for fact, (module, regex, _) in spec["patterns"].items():
        patterns[fact] = any(re.search(regex, text) for name, text in sources.items() if name.startswith(module))
    return flags, patterns


def ranges(present: list[bool], versions: list[str]) -> list[list[str]]:
    """[[first, last], ...] of the consecutive releases where `present` holds."""
    out: list[list[str]] = []
    for ok, v in zip(present, versions):
        if ok and out and out[-1][1] == versions[versions.index(v) - 1]:
            out[-1][1] = v
        elif ok:
            out.append([v, v])
    return out


def generate(system: str, cache: Path) -> dict:
    if system == "vllm":
        return generate_vllm(cache)
    spec = SYSTEMS[system]
    downloads = releases(spec["package"], spec["min"])
    versions = list(downloads)
    per_release = {}
    for v, actual in downloads.items():
        print(f"{system} {actual}", file=sys.stderr)
        per_release[v] = read_release(wheel(spec["package"], actual, cache), spec)
    return assemble(system, spec["package"], spec["programs"], spec["patterns"], versions, per_release)


def generate_vllm(cache: Path) -> dict:
    downloads = releases(VLLM["package"], VLLM["min"])
    per_release = {}
    for v, actual in downloads.items():
        print(f"vllm {actual}", file=sys.stderr)
        sources = remote_members(VLLM["package"], actual, VLLM["members"], cache)
        if sources:
            per_release[v] = ({"vllm": vllm_flags(sources)}, {})
    data = assemble("vllm", VLLM["package"], {"vllm": None}, {}, list(per_release), per_release)
    data["source"] += f" ({', '.join(VLLM['members'])}, read by HTTP range requests)"
    return data


def assemble(system: str, package: str, programs_spec, patterns_spec, versions: list[str], per_release: dict) -> dict:
    """Version ranges of every flag and pattern from what each release showed."""
    programs: dict[str, dict[str, dict]] = {}
    for program in programs_spec:
        every = sorted({f for v in versions for f in per_release[v][0][program]})
        table = {}
        for flag in every:
            present = [flag in per_release[v][0][program] for v in versions]
            entry: dict = {"in": ranges(present, versions)}
            deprecated = [per_release[v][0][program].get(flag, {}).get("deprecated", False) for v in versions]
            if any(deprecated):
                entry["deprecated"] = ranges(deprecated, versions)
            defaults = {json.dumps(per_release[v][0][program][flag].get("default")): v for v in versions
                        if flag in per_release[v][0][program] and "default" in per_release[v][0][program][flag]}
            if len(defaults) == 1:
                entry["default"] = json.loads(next(iter(defaults)))
            elif defaults:  # the default changed between releases: record each with the first release that had it
                firsts = {}
                for v in versions:
                    info = per_release[v][0][program].get(flag, {})
                    if "default" in info:
                        firsts.setdefault(json.dumps(info["default"]), v)
                entry["defaults"] = [[v, json.loads(d)] for d, v in sorted(firsts.items(), key=lambda kv: version_key(kv[1]))]
            table[flag] = entry
        programs[program] = table
    patterns = {}
    for fact, (module, regex, sentence) in patterns_spec.items():
        patterns[fact] = {"in": ranges([per_release[v][1][fact] for v in versions], versions), "says": sentence, "read_from": module, "regex": regex}
    return {
        "system": system,
        "package": package,
        "source": f"PyPI wheels of {package} {versions[0]}..{versions[-1]}, read statically by tools/gen_knowledge.py",
        "releases": versions,
        "flags": programs,
        "patterns": patterns,
    }


def write(system: str, data: dict, out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = ["{"]
    head = {k: v for k, v in data.items() if k not in ("flags", "patterns")}
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append('  "patterns": {')
    pats = list(data["patterns"].items())
    for i, (k, v) in enumerate(pats):
        lines.append(f"    {json.dumps(k)}: {json.dumps(v)}{',' if i < len(pats) - 1 else ''}")
    lines.append("  },")
    lines.append('  "flags": {')
    progs = list(data["flags"].items())
    for i, (prog, table) in enumerate(progs):
        lines.append(f"    {json.dumps(prog)}: {{")
        items = list(table.items())
        for j, (flag, entry) in enumerate(items):
            lines.append(f"      {json.dumps(flag)}: {json.dumps(entry)}{',' if j < len(items) - 1 else ''}")
        lines.append(f"    }}{',' if i < len(progs) - 1 else ''}")
    lines.append("  }")
    lines.append("}")
    (out / f"{system}.json").write_text("\n".join(lines) + "\n")


def write_release_lists() -> None:
    """Every release list in one small file, so that the doctor's start does not load the flag tables."""
    data = {name: list(releases(package, minimum)) for name, (package, minimum) in RELEASE_LISTS.items()}
    for system in [*SYSTEMS, "vllm", "llm-d-router"]:
        path = OUT / f"{system}.json"
        if path.exists():
            data[system] = json.loads(path.read_text())["releases"]
    text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in data.items()) + "\n}\n"
    (OUT / "releases.json").write_text(text)


def _mirror(text: str) -> tuple[str, Path]:
    system, _, path = text.partition("=")
    if not path:
        raise argparse.ArgumentTypeError("give SYSTEM=PATH, e.g. vllm=/work/.mirror/vllm-project+vllm/repo")
    return system, Path(path)


def main(argv: list[str] | None = None) -> int:
    import knowledge_transports as transports

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/disagg-knowledge-cache"), help="where wheels are kept between runs")
    ap.add_argument("--only", choices=sorted(SYSTEMS) + ["vllm", "vllm-env", "releases", "transports", "llm-d-router", "dynamo-pins"])
    ap.add_argument("--mirror", type=_mirror, action="append", default=[], metavar="SYSTEM=PATH",
                    help="read the transports of SYSTEM (vllm, sglang, trtllm) from this local git mirror at each pinned tag, not from PyPI")
    ap.add_argument("--system", action="append", help="with --only transports: only these systems (default: all)")
    ap.add_argument("--out", type=Path, default=OUT, help="where the generated tables go")
    args = ap.parse_args(argv)
    if args.only == "releases":
        write_release_lists()
        return 0
    if args.only == "dynamo-pins":
        import knowledge_pins

        data = knowledge_pins.generate(list(releases(SYSTEMS["dynamo"]["package"], SYSTEMS["dynamo"]["min"])), args.cache)
        args.out.mkdir(parents=True, exist_ok=True)
        head = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in data.items() if k != "releases"]
        body = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in data["releases"].items()]
        (args.out / "dynamo-pins.json").write_text("{\n" + "\n".join(head) + '\n  "releases": {\n' + ",\n".join(body) + "\n  }\n}\n")
        return 0
    if args.only == "vllm-env":
        import knowledge_env

        downloads = releases(VLLM["package"], VLLM["min"])
        fetch = lambda v: remote_members(VLLM["package"], downloads[v], (knowledge_env.MEMBER,), args.cache / "env")  # noqa: E731
        data = knowledge_env.generate(list(downloads), fetch, ranges)
        args.out.mkdir(parents=True, exist_ok=True)
        lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in data.items() if k != "env"]
        body = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in data["env"].items()]
        (args.out / "vllm-env.json").write_text("{\n" + "\n".join(lines) + '\n  "env": {\n' + ",\n".join(body) + "\n  }\n}\n")
        return 0
    if args.only == "llm-d-router":
        import knowledge_llmd

        mirror = dict(args.mirror).get("llm-d-router")
        if mirror is None:
            ap.error("--only llm-d-router reads a local git mirror: give --mirror llm-d-router=PATH")
        args.out.mkdir(parents=True, exist_ok=True)
        write("llm-d-router", knowledge_llmd.generate(mirror, assemble, ranges), args.out)
        return 0
    if args.only == "transports":
        mirrors = dict(args.mirror)
        systems = args.system or list(mirrors) or list(transports.SYSTEMS)
        path = transports.write(transports.generate(systems, mirrors, args.cache, log=lambda m: print(m, file=sys.stderr)), args.out)
        print(f"wrote {path}", file=sys.stderr)
        return 0
    for system in [args.only] if args.only else [*SYSTEMS, "vllm"]:
        write(system, generate(system, args.cache))
        print(f"wrote {OUT / (system + '.json')}", file=sys.stderr)
    write_release_lists()
    return 0


if __name__ == "__main__":
    sys.exit(main())
