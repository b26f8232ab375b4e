"""KV transports per release, for `tools/gen_knowledge.py --only transports`: the connector names vLLM's
`KVConnectorFactory` registers, SGLang's `--disaggregation-transfer-backend` choices and TensorRT-LLM's
`cache_transceiver_config.backend` values, read statically (`ast`) from each pinned release.

A release is read from a local git mirror of the project (`--mirror vllm=/path/to/vllm.git`: `git show TAG:PATH`,
the tag's commit recorded) or else from its wheel on PyPI (a few members fetched by HTTP range requests; the wheel's
file name, sha256 and, where the wheel records it, the commit are recorded). Nothing is imported or executed, and no
upstream code is kept: only names, the module and class a name loads, and where each was read.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import urllib.request
import zipfile
from pathlib import Path

# Pinned release lists (edit these to add a release; a release missing from a source is recorded as missing).
VLLM_RELEASES = (
    "0.6.5", "0.6.6", "0.7.0", "0.7.1", "0.7.2", "0.7.3", "0.8.0", "0.8.1", "0.8.2", "0.8.3", "0.8.4", "0.8.5", "0.9.0", "0.9.0.1", "0.9.1", "0.9.2", "0.10.0", "0.10.1", "0.10.1.1",
    "0.10.2", "0.11.0", "0.11.1", "0.11.2", "0.12.0", "0.13.0", "0.14.0", "0.14.1", "0.15.0", "0.15.1", "0.16.0", "0.17.0",
    "0.17.1", "0.18.0", "0.18.1", "0.19.0", "0.19.1", "0.20.0", "0.20.1", "0.20.2", "0.21.0", "0.22.0", "0.22.1", "0.23.0",
    "0.24.0", "0.25.0", "0.25.1", "0.26.0", "0.27.0", "0.27.1", "0.28.0", "0.29.0", "0.30.0", "0.31.0", "0.32.0", "0.33.0",
    "0.34.0",
)
SGLANG_RELEASES = (
    "0.4.6", "0.4.7", "0.4.8", "0.4.9", "0.4.10", "0.5.1", "0.5.2", "0.5.3", "0.5.4", "0.5.5", "0.5.6", "0.5.7", "0.5.8", "0.5.9",
    "0.5.10", "0.5.11", "0.5.12", "0.5.13", "0.5.14", "0.5.15", "0.5.16", "0.5.17", "0.5.18", "0.5.19", "0.5.20", "0.5.21",
    "0.5.22", "0.5.23",
)
# ai-dynamo-vllm: the vLLM that Dynamo 0.1-0.3 workers ran, with Dynamo's KV patch (DynamoNixlConnector).
DYNAMO_VLLM_RELEASES = ("0.7.2", "0.8.4")
DYNAMO_RELEASES = (
    "0.4.0", "0.4.1", "0.5.0", "0.5.1", "0.6.0", "0.6.1", "0.7.0", "0.7.1", "0.8.0", "0.8.1", "0.9.0", "0.9.1", "1.0.0", "1.0.1",
    "1.0.2", "1.1.0", "1.1.1", "1.2.0", "1.2.1", "1.3.0", "1.3.1", "1.4.0", "1.4.1", "1.4.2", "1.5.0", "1.5.1", "1.6.0", "1.6.1",
)
# vllm-project/vllm-ascend release tags that register KV connectors (v0.7.3 on; read from a git mirror of the repo)
VLLM_ASCEND_RELEASES = (
    "0.7.3", "0.7.3.post1", "0.8.4rc1", "0.8.4rc2", "0.8.5rc1", "0.9.0rc1", "0.9.0rc2", "0.9.1rc1", "0.9.1rc2", "0.9.1rc3", "0.9.1",
    "0.9.2rc1", "0.10.0rc1", "0.10.1rc1", "0.10.2rc1", "0.11.0rc0", "0.11.0rc1", "0.11.0rc2", "0.11.0rc3", "0.11.0", "0.12.0rc1",
    "0.13.0rc1", "0.13.0rc2", "0.13.0rc3", "0.13.0", "0.14.0rc1", "0.15.0rc1", "0.16.0rc1", "0.17.0rc1", "0.18.0rc1", "0.18.0",
    "0.19.1rc1", "0.20.2rc1", "0.21.0rc1", "0.22.1rc1", "0.23.0rc1", "0.23.0", "0.24.0rc1", "0.25.1rc1",
)
TRTLLM_RELEASES = ("0.20.0", "0.21.0", "1.0.0", "1.1.0", "1.2.0", "1.2.1")

# dynamo.trtllm's argument parser and the enums its choices come from, across releases (0.4-0.9: utils/trtllm_utils.py
# with the enums in request_handlers/handler_base.py or constants.py; 1.0 on: backend_args.py and constants.py)
_DYNAMO_TRTLLM_ARGS = {f"components/src/dynamo/trtllm/{m}": f"dynamo/trtllm/{m}" for m in (
    "utils/trtllm_utils.py", "backend_args.py", "constants.py", "request_handlers/handler_base.py")}

SYSTEMS = {
    "vllm": {
        "package": "vllm", "repo": "vllm-project/vllm", "tag": "v{}", "releases": VLLM_RELEASES,
        "what": "names registered with KVConnectorFactory.register_connector(name, module, class)",
        # repository path -> wheel member
        "files": {"vllm/distributed/kv_transfer/kv_connector/factory.py": "vllm/distributed/kv_transfer/kv_connector/factory.py"},
        "version_file": "vllm/_version.py",
    },
    "vllm-kv-config": {
        "package": "vllm", "repo": "vllm-project/vllm", "tag": "v{}", "releases": VLLM_RELEASES,
        "what": "fields of KVTransferConfig (the keys --kv-transfer-config takes)",
        "files": {"vllm/config/kv_transfer.py": "vllm/config/kv_transfer.py", "vllm/config/__init__.py": "vllm/config/__init__.py",
                  "vllm/config.py": "vllm/config.py", "vllm/config/utils.py": "vllm/config/utils.py"},
        "version_file": None,
    },
    "vllm-kv-role": {
        "package": "vllm", "repo": "vllm-project/vllm", "tag": "v{}", "releases": VLLM_RELEASES,
        "what": "values KVTransferConfig.kv_role accepts (the KVRole Literal, or the list __post_init__ checks)",
        "files": {"vllm/config/kv_transfer.py": "vllm/config/kv_transfer.py", "vllm/config/__init__.py": "vllm/config/__init__.py",
                  "vllm/config.py": "vllm/config.py"},
        "version_file": None,
    },
    "dynamo-vllm": {
        "package": "ai-dynamo-vllm", "repo": "ai-dynamo/dynamo", "tag": "ai-dynamo-vllm {}", "releases": DYNAMO_VLLM_RELEASES,
        "what": "names registered with KVConnectorFactory.register_connector in the patched vLLM Dynamo 0.1-0.3 ran "
                "(the patch: container/deps/vllm/ in ai-dynamo/dynamo)",
        "files": {"vllm/distributed/kv_transfer/kv_connector/factory.py": "vllm/distributed/kv_transfer/kv_connector/factory.py"},
        "version_file": None,
    },
    "dynamo": {
        "package": "ai-dynamo", "repo": "ai-dynamo/dynamo", "tag": "v{}", "releases": DYNAMO_RELEASES,
        "what": "kv_connector names dynamo.vllm resolves a prefill/decode protocol for (KV_CONNECTOR_PROTOCOLS; class = the "
                "protocol), and the wrappers it looks into (MULTI_CONNECTOR_WRAPPERS; class = 'wrapper'); a release without "
                "the module is listed as missing",
        "files": {"components/src/dynamo/vllm/kv_connector_protocols.py": "dynamo/vllm/kv_connector_protocols.py"},
        "version_file": None,
    },
    "sglang": {
        "package": "sglang", "repo": "sgl-project/sglang", "tag": "v{}", "releases": SGLANG_RELEASES,
        "what": "choices of --disaggregation-transfer-backend",
        "files": {"python/sglang/srt/server_args.py": "sglang/srt/server_args.py",
                  "python/sglang/srt/arg_groups/choices.py": "sglang/srt/arg_groups/choices.py",
                  "python/sglang/srt/arg_groups/fields/disagg.py": "sglang/srt/arg_groups/fields/disagg.py",
                  "python/sglang/srt/disaggregation/utils.py": "sglang/srt/disaggregation/utils.py"},
        "version_file": "sglang/version.py",
    },
    "sglang-disagg-mode": {
        "package": "sglang", "repo": "sgl-project/sglang", "tag": "v{}", "releases": SGLANG_RELEASES,
        "what": "choices of --disaggregation-mode",
        "files": {"python/sglang/srt/server_args.py": "sglang/srt/server_args.py",
                  "python/sglang/srt/arg_groups/choices.py": "sglang/srt/arg_groups/choices.py",
                  "python/sglang/srt/arg_groups/fields/disagg.py": "sglang/srt/arg_groups/fields/disagg.py",
                  "python/sglang/srt/disaggregation/utils.py": "sglang/srt/disaggregation/utils.py"},
        "version_file": "sglang/version.py",
    },
    "dynamo-trtllm-disagg-mode": {
        "package": "ai-dynamo", "repo": "ai-dynamo/dynamo", "tag": "v{}", "releases": DYNAMO_RELEASES,
        "what": "choices of dynamo.trtllm's --disaggregation-mode (its argparse choices: literals, module constants and the "
                "values of the DisaggregationMode enum the list comprehension walks)",
        "files": _DYNAMO_TRTLLM_ARGS,
        "version_file": None,
    },
    "dynamo-trtllm-disagg-strategy": {
        "package": "ai-dynamo", "repo": "ai-dynamo/dynamo", "tag": "v{}", "releases": DYNAMO_RELEASES,
        "what": "choices of dynamo.trtllm's --disaggregation-strategy (the DisaggregationStrategy enum's values); a release "
                "without the flag is listed as missing",
        "files": _DYNAMO_TRTLLM_ARGS,
        "version_file": None,
    },
    "vllm-ascend": {
        "package": "vllm-ascend", "repo": "vllm-project/vllm-ascend", "tag": "v{}", "releases": VLLM_ASCEND_RELEASES,
        "what": "names the vllm-ascend plugin registers with vLLM's KVConnectorFactory.register_connector when it loads "
                "(its register_connector entry point)",
        "files": {"vllm_ascend/distributed/__init__.py": "vllm_ascend/distributed/__init__.py",
                  "vllm_ascend/distributed/kv_transfer/__init__.py": "vllm_ascend/distributed/kv_transfer/__init__.py"},
        "version_file": None,
    },
    "trtllm": {
        "package": "tensorrt-llm", "repo": "NVIDIA/TensorRT-LLM", "tag": "v{}", "releases": TRTLLM_RELEASES,
        "what": "values of CacheTransceiverConfig.backend (cache_transceiver_config.backend)",
        "files": {"tensorrt_llm/llmapi/llm_args.py": "tensorrt_llm/llmapi/llm_args.py"},
        "version_file": None,
    },
}

# Code facts about the transports, each a regular expression over the files above and the sentence it stands for.
PATTERNS = {
    "vllm": {
        "nixl_transfer_mode": (r"""["']transfer_mode["']""",
                               "NixlConnector reads kv_connector_extra_config.transfer_mode ('pull' default, or 'push'; anything else is a "
                               "ValueError at start) and loads NixlPullConnector or NixlPushConnector"),
        "module_path_first": (r"kv_connector_module_path",
                              "with kv_connector_module_path set, kv_connector names a class in that module and the registry is not consulted"),
    },
    "dynamo": {
        "pd_protocol_required": (r"Unsupported kv_connector",
                                 "dynamo.vllm raises ValueError('Unsupported kv_connector=... for PD') at request setup for a kv_connector "
                                 "with no PD protocol, and a wrapper with no PD-capable sub-connector"),
    },
    "vllm-kv-config": {
        "extra_fields_forbidden": (r"(?s)(?=.*forbids extra fields)(?=.*@config\s*\n(?:@[^\n]*\n)*class KVTransferConfig\b)",
                                   "KVTransferConfig is a @config pydantic dataclass that forbids extra fields: a key that is no field "
                                   "of the release makes vLLM exit at start"),
    },
    "vllm-kv-role": {
        "rejects_other": (r"Unsupported kv_role",
                          "KVTransferConfig.__post_init__ raises ValueError('Unsupported kv_role: ...') for any other value: "
                          "vLLM exits at start"),
    },
    "sglang": {
        "choices_extensible": (r"add_disagg_transfer_backend_choices",
                               "a plugin may add --disaggregation-transfer-backend choices (add_disagg_transfer_backend_choices)"),
    },
}


# --- reading one release (the readers live in knowledge_transport_readers.py) ------------------------------------

from knowledge_transport_readers import (  # noqa: E402
    argparse_choices,
    dynamo_protocols,
    kv_config_fields,
    kv_roles,
    sglang_backends,
    sglang_choices,
    trtllm_backends,
    vllm_registered,
)


def read_names(system: str, texts: dict[str, str]) -> dict[str, list[str]]:
    """The transports one release defines, from its files (repository paths -> text)."""
    if system == "vllm-kv-config":
        return kv_config_fields(texts)
    if system == "vllm-kv-role":
        return kv_roles(texts)
    if system == "sglang-disagg-mode":
        return sglang_choices(texts, "--disaggregation-mode")
    if system in ("vllm", "dynamo-vllm"):
        return vllm_registered(texts.get("vllm/distributed/kv_transfer/kv_connector/factory.py", ""))
    if system == "vllm-ascend":
        return {name: where for text in texts.values() for name, where in vllm_registered(text).items()}
    if system == "sglang":
        return sglang_backends(texts)
    if system == "dynamo-trtllm-disagg-mode":
        return argparse_choices(texts, "--disaggregation-mode")
    if system == "dynamo-trtllm-disagg-strategy":
        return argparse_choices(texts, "--disaggregation-strategy")
    if system == "dynamo":
        return dynamo_protocols(texts.get("components/src/dynamo/vllm/kv_connector_protocols.py", ""))
    return trtllm_backends(texts.get("tensorrt_llm/llmapi/llm_args.py", ""))


# --- sources: a local git mirror, or the wheel on PyPI ----------------------------------------------------------

def from_mirror(git_dir: Path, tag: str, paths) -> tuple[dict[str, str], dict] | None:
    """(files, where) of one tag of a bare or working git repository; None when the tag is not there."""
    rev = subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", "--verify", "-q", f"{tag}^{{commit}}"], capture_output=True, text=True)
    if rev.returncode != 0:
        return None
    commit = rev.stdout.strip()
    texts = {}
    for path in paths:
        r = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], capture_output=True)
        if r.returncode == 0:
            texts[path] = r.stdout.decode("utf-8", "replace")
    return texts, {"tag": tag, "commit": commit}


def wheel_link(package: str, version: str) -> tuple[str, str, str] | None:
    """(url, file name, sha256) of a release's x86_64 Linux (or pure-Python) wheel in PyPI's simple index."""
    with urllib.request.urlopen(f"https://pypi.org/simple/{package}/", timeout=60) as r:
        page = r.read().decode()
    stem = package.replace("-", "_")
    for url, name, sha in re.findall(r'href="([^"#]+/([^/"#]+\.whl))#sha256=([0-9a-f]+)"', page):
        if re.match(rf"{re.escape(stem)}-{re.escape(version)}(\.post\d+)?-", name) and ("x86_64" in name or name.endswith("-none-any.whl")):
            return url, name, sha
    return None


def from_wheel(package: str, version: str, members: dict[str, str], version_file: str | None, cache: Path) -> tuple[dict[str, str], dict] | None:
    """(files by repository path, where) of a release's wheel; members are cached under `cache`."""
    from knowledge_sources import _RangeFile  # the same range reader as the flag tables

    link = wheel_link(package, version)
    if link is None:
        return None
    url, name, sha = link
    wanted = dict(members)
    if version_file:
        wanted["<version>"] = version_file
    # one cache folder per wheel and set of members (another table reads other members of the same wheel)
    folder = cache / "transports" / name / hashlib.sha256("\n".join(sorted(wanted.values())).encode()).hexdigest()[:12]
    if not (folder / ".done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BufferedReader(_RangeFile(url), buffer_size=1 << 20)) as zf:
            names = set(zf.namelist())
            for member in wanted.values():
                if member in names:
                    (folder / member.replace("/", "__")).write_bytes(zf.read(member))
        (folder / ".done").write_text(url)
    texts = {}
    for path, member in wanted.items():
        f = folder / member.replace("/", "__")
        if f.exists():
            texts[path] = f.read_text("utf-8", "replace")
    where = {"artifact": name, "sha256": sha}
    commit = re.search(r"""__commit_id__\s*=\s*commit_id\s*=\s*['"]g?([0-9a-f]{7,40})['"]""", texts.pop("<version>", ""))
    if commit:
        where["commit"] = commit.group(1)
    return texts, where


# --- the table ------------------------------------------------------------------------------------------------

def _ranges(present: list[bool], versions: list[str]) -> list[list[str]]:
    out: list[list[str]] = []
    for i, (ok, v) in enumerate(zip(present, versions)):
        if ok and out and i > 0 and out[-1][1] == versions[i - 1]:
            out[-1][1] = v
        elif ok:
            out.append([v, v])
    return out


def assemble(system: str, per_release: dict[str, tuple[dict[str, list[str]], dict, dict[str, bool]]]) -> dict:
    """The versioned table of one system from what each release showed: (names -> [module, class], where, patterns)."""
    spec = SYSTEMS[system]
    versions = [v for v in spec["releases"] if v in per_release]
    names: dict[str, dict] = {}
    for name in sorted({n for v in versions for n in per_release[v][0]}):
        entry: dict = {"in": _ranges([name in per_release[v][0] for v in versions], versions)}
        loads = [(v, tuple(per_release[v][0][name])) for v in versions if per_release[v][0].get(name)]
        if loads:
            by_release = dict(loads)
            entry["loads"] = [{"in": _ranges([by_release.get(v) == target for v in versions], versions), "module": target[0], "class": target[1]}
                              for target in dict.fromkeys(t for _, t in loads)]
        names[name] = entry
    patterns = {}
    for fact, (regex, says) in PATTERNS.get(system, {}).items():
        patterns[fact] = {"in": _ranges([per_release[v][2].get(fact, False) for v in versions], versions), "says": says, "regex": regex}
    return {
        "repo": spec["repo"],
        "package": spec["package"],
        "what": spec["what"],
        "read_from": list(spec["files"]),
        "releases": {v: per_release[v][1] for v in versions},
        "missing": [v for v in spec["releases"] if v not in per_release],
        "names": names,
        "patterns": patterns,
    }


def read_release(system: str, version: str, mirror: Path | None, cache: Path) -> tuple[dict[str, list[str]], dict, dict[str, bool]] | None:
    spec = SYSTEMS[system]
    got = from_mirror(mirror, spec["tag"].format(version), spec["files"]) if mirror else None
    if got is None and mirror is None:
        got = from_wheel(spec["package"], version, spec["files"], spec["version_file"], cache)
    if got is None:
        return None
    texts, where = got
    if mirror is None:
        where = {"tag": spec["tag"].format(version), **where}
    names = read_names(system, texts)
    if not names:
        return None  # the file is not there, or defines nothing we can read: say so rather than record an empty release
    joined = "\n".join(texts.values())
    patterns = {fact: bool(re.search(regex, joined)) for fact, (regex, _) in PATTERNS.get(system, {}).items()}
    return names, where, patterns


def generate(systems, mirrors: dict[str, Path], cache: Path, log=print) -> dict:
    out = {}
    for system in systems:
        per_release = {}
        for version in SYSTEMS[system]["releases"]:
            got = read_release(system, version, mirrors.get(system), cache)
            log(f"transports {system} {version}: {'missing' if got is None else len(got[0])}")
            if got is not None:
                per_release[version] = got
        out[system] = assemble(system, per_release)
    return out


def write(data: dict, out: Path) -> Path:
    """Write the tables of `data`, keeping the other systems of an existing `transports.json` (a run may regenerate some)."""
    old = out / "transports.json"
    if old.exists():
        data = {**json.loads(old.read_text()), **data}
    return _write(data, out)


def _write(data: dict, out: Path) -> Path:
    """`transports.json`: one system per key, one name per line (diffs between regenerations stay readable)."""
    lines = ["{"]
    for i, (system, table) in enumerate(data.items()):
        lines.append(f"  {json.dumps(system)}: {{")
        head = [(k, v) for k, v in table.items() if k != "names"]
        for k, v in head:
            if k == "releases":
                lines.append('    "releases": {')
                rel = list(v.items())
                lines += [f"      {json.dumps(r)}: {json.dumps(w)}{',' if j < len(rel) - 1 else ''}" for j, (r, w) in enumerate(rel)]
                lines.append("    },")
            else:
                lines.append(f"    {json.dumps(k)}: {json.dumps(v)},")
        lines.append('    "names": {')
        names = list(table["names"].items())
        lines += [f"      {json.dumps(n)}: {json.dumps(e)}{',' if j < len(names) - 1 else ''}" for j, (n, e) in enumerate(names)]
        lines.append("    }")
        lines.append(f"  }}{',' if i < len(data) - 1 else ''}")
    lines.append("}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "transports.json"
    path.write_text("\n".join(lines) + "\n")
    return path
