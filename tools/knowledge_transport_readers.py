"""Readers of one release's source for `tools/knowledge_transports.py`: each takes the text of a few files (repository
path -> text) and returns {name: [module, class]} (or {value: []}) of what that release registers or accepts, read
statically with `ast` (nothing is imported or executed)."""

from __future__ import annotations

import ast

_FACTORY_PACKAGE = "vllm.distributed.kv_transfer.kv_connector"


def vllm_registered(text: str) -> dict[str, list[str]]:
    """{name: [module, class]} of every `register_connector("Name", "module", "Class")` call with literal arguments;
    for the first factory (0.6.5-0.6.6), the names of its `supported_kv_connector` list and the class it imports."""
    out: dict[str, list[str]] = {}
    tree = _parse(text)
    for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        names = next((_strings(a.value) for a in ast.walk(fn) if isinstance(a, ast.Assign) and len(a.targets) == 1
                      and isinstance(a.targets[0], ast.Name) and a.targets[0].id == "supported_kv_connector"), None)
        imports = [(f"{_FACTORY_PACKAGE}.{i.module}" if i.level == 1 else i.module or "", i.names[0].name)
                   for i in ast.walk(fn) if isinstance(i, ast.ImportFrom) and len(i.names) == 1]
        if names and len(imports) == 1:
            out.update({name: list(imports[0]) for name in names})
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register_connector":
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            kw = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)}
            names = args + [kw[k] for k in ("name", "module_path", "class_name") if k in kw]
            if len(names) >= 3:
                out[names[0]] = [names[1], names[2]]
    return out


def sglang_backends(texts: dict[str, str]) -> dict[str, list[str]]:
    """{backend: []} of `--disaggregation-transfer-backend`'s choices."""
    return sglang_choices(texts, "--disaggregation-transfer-backend")


def sglang_choices(texts: dict[str, str], flag: str) -> dict[str, list[str]]:
    """{choice: []} of an SGLang flag's choices: an `add_argument` call's `choices=`, or the field's `Arg(choices=...)`
    (the field is the flag's name with underscores), a literal or a module-level list named there."""
    field = flag.lstrip("-").replace("-", "_")
    constants: dict[str, list[str]] = {}
    trees = [_parse(t) for t in texts.values()]
    for tree in trees:
        for node in tree.body:
            target, value = (node.targets[0], node.value) if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
                (node.target, node.value) if isinstance(node, ast.AnnAssign) and node.value is not None else (None, None)
            strings = _strings(value)
            if isinstance(target, ast.Name) and strings is not None:
                constants[target.id] = strings
    for tree in trees:
        for node in ast.walk(tree):
            choices = None
            if isinstance(node, ast.Call) and any(isinstance(a, ast.Constant) and a.value == flag for a in node.args):
                choices = next((k.value for k in node.keywords if k.arg == "choices"), None)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == field:
                for call in (n for n in ast.walk(node.annotation) if isinstance(n, ast.Call)):
                    choices = next((k.value for k in call.keywords if k.arg == "choices"), choices)
                if choices is None:  # `A[Literal["null", "prefill", "decode"], "help"]`: the Literal is the choices
                    choices = next((sub.slice for sub in ast.walk(node.annotation) if isinstance(sub, ast.Subscript)
                                    and getattr(sub.value, "id", getattr(sub.value, "attr", "")) == "Literal"), None)
            if choices is None:
                continue
            found = _strings(choices) if not isinstance(choices, ast.Name) else constants.get(choices.id)
            if found:
                return {b: [] for b in found}
    return {}


def argparse_choices(texts: dict[str, str], flag: str) -> dict[str, list[str]]:
    """{choice: []} of the `choices=` of the call that adds `flag` (`parser.add_argument("--x", ...)` or Dynamo's
    `add_argument(group, flag_name="--x", ...)`), evaluated statically: string literals, module-level string constants,
    `*` unpacking, and `[m.value for m in SomeEnum if m != SomeEnum.MEMBER]` over an Enum class of these files."""
    trees = [_parse(t) for t in texts.values()]
    constants: dict[str, str] = {}
    enums: dict[str, dict[str, str]] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                constants[node.targets[0].id] = node.value.value
            elif isinstance(node, ast.ClassDef) and any(getattr(b, "id", getattr(b, "attr", "")) in ("Enum", "str") for b in node.bases):
                members = {i.targets[0].id: i.value.value for i in node.body if isinstance(i, ast.Assign) and len(i.targets) == 1
                           and isinstance(i.targets[0], ast.Name) and isinstance(i.value, ast.Constant) and isinstance(i.value.value, str)}
                if members:
                    enums[node.name] = members

    def value(node) -> list[str] | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.Name) and node.id in constants:
            return [constants[node.id]]
        if isinstance(node, ast.Starred):
            return value(node.value)
        if isinstance(node, (ast.List, ast.Tuple)):
            out: list[str] = []
            for e in node.elts:
                got = value(e)
                if got is None:
                    return None
                out += got
            return out
        if isinstance(node, ast.ListComp) and len(node.generators) == 1:
            gen = node.generators[0]
            enum = enums.get(getattr(gen.iter, "id", ""))
            var = getattr(gen.target, "id", None)
            if enum is None or not (isinstance(node.elt, ast.Attribute) and node.elt.attr == "value" and getattr(node.elt.value, "id", None) == var):
                return None
            kept = dict(enum)
            for cond in gen.ifs:  # `m != Enum.MEMBER` / `m not in (Enum.A, Enum.B)`
                if not (isinstance(cond, ast.Compare) and getattr(cond.left, "id", None) == var and len(cond.ops) == 1):
                    return None
                right = cond.comparators[0]
                named = [e.attr for e in (right.elts if isinstance(right, (ast.Tuple, ast.List, ast.Set)) else [right]) if isinstance(e, ast.Attribute)]
                if isinstance(cond.ops[0], (ast.NotEq, ast.NotIn, ast.IsNot)):
                    kept = {k: v for k, v in kept.items() if k not in named}
                else:
                    return None
            return list(kept.values())
        return None

    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            names = [a.value for a in node.args if isinstance(a, ast.Constant)] + \
                [k.value.value for k in node.keywords if k.arg == "flag_name" and isinstance(k.value, ast.Constant)]
            if flag not in names:
                continue
            choices = next((k.value for k in node.keywords if k.arg == "choices"), None)
            found = value(choices) if choices is not None else None
            if found:
                return {c: [] for c in dict.fromkeys(found)}
    return {}


def dynamo_protocols(text: str) -> dict[str, list[str]]:
    """{name: [module, protocol class or 'wrapper']} of KV_CONNECTOR_PROTOCOLS' keys and MULTI_CONNECTOR_WRAPPERS."""
    out: dict[str, list[str]] = {}
    module = "dynamo.vllm.kv_connector_protocols"
    for node in _parse(text).body:
        target, value = (node.targets[0], node.value) if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            (node.target, node.value) if isinstance(node, ast.AnnAssign) and node.value is not None else (None, None)
        if not isinstance(target, ast.Name):
            continue
        if target.id == "KV_CONNECTOR_PROTOCOLS" and isinstance(value, ast.Dict):
            for k, v in zip(value.keys, value.values):
                if isinstance(k, ast.Constant) and isinstance(k.value, str):
                    out[k.value] = [module, v.id if isinstance(v, ast.Name) else "protocol"]
        elif target.id == "MULTI_CONNECTOR_WRAPPERS":
            for name in _strings(value) or []:
                out[name] = [module, "wrapper"]
    return out


def trtllm_backends(text: str) -> dict[str, list[str]]:
    """{backend: []} of the `backend` field of `class CacheTransceiverConfig`: the strings of its `Literal[...]`."""
    for node in ast.walk(_parse(text)):
        if isinstance(node, ast.ClassDef) and node.name == "CacheTransceiverConfig":
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.target.id == "backend":
                    for sub in ast.walk(item.annotation):
                        if isinstance(sub, ast.Subscript) and getattr(sub.value, "id", getattr(sub.value, "attr", "")) == "Literal":
                            found = _strings(sub.slice)
                            if found:
                                return {b: [] for b in found}
    return {}


def _parse(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def _strings(node) -> list[str] | None:
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)) and node.elts and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return [e.value for e in node.elts]
    return None


def kv_config_fields(texts: dict[str, str]) -> dict[str, list[str]]:
    """{field: []} of the annotated fields of `class KVTransferConfig`."""
    for text in texts.values():
        for node in ast.walk(_parse(text)):
            if isinstance(node, ast.ClassDef) and node.name == "KVTransferConfig":
                return {i.target.id: [] for i in node.body if isinstance(i, ast.AnnAssign) and isinstance(i.target, ast.Name)}
    return {}


def _alias_strings(node: ast.AST, aliases: dict[str, ast.AST], seen: tuple[str, ...] = ()) -> list[str]:
    """The string constants in `node`, following module-level names it uses (`Literal[KVProducer, KVConsumer]`)."""
    out: list[str] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            out.append(sub.value)
        elif isinstance(sub, ast.Name) and sub.id in aliases and sub.id not in seen:
            out += _alias_strings(aliases[sub.id], aliases, seen + (sub.id,))
    return out


def kv_roles(texts: dict[str, str]) -> dict[str, list[str]]:
    """{role: []} of the values `KVTransferConfig.kv_role` accepts: the strings of the `Literal` its annotation names
    (module-level aliases such as `KVRole = Literal[KVProducer, KVConsumer]` resolved), or, in releases that typed it
    `str`, the list `__post_init__` compares it with (`self.kv_role not in ["kv_producer", ...]`)."""
    for text in texts.values():
        tree = _parse(text)
        aliases: dict[str, ast.AST] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                aliases[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                aliases[node.target.id] = node.value
            elif type(node).__name__ == "TypeAlias":  # `type KVRole = Literal[...]` (Python 3.12)
                aliases[node.name.id] = node.value

        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "KVTransferConfig"):
            for item in cls.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.target.id == "kv_role":
                    found = [v for v in dict.fromkeys(_alias_strings(item.annotation, aliases)) if v.startswith("kv_")]
                    if found:
                        return {v: [] for v in found}
            for cmp in (n for n in ast.walk(cls) if isinstance(n, ast.Compare)):
                if isinstance(cmp.left, ast.Attribute) and cmp.left.attr == "kv_role" and isinstance(cmp.ops[0], ast.NotIn):
                    found = _strings(cmp.comparators[0])
                    if found:
                        return {v: [] for v in found}
    return {}
