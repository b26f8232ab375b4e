"""A YAML file that writes a key twice in one mapping, read as the program that loads it reads it: the last value kept,
with each key written twice as an issue (`key_twice`, reported by DG407) instead of the whole file unread.

YAML says each key of a mapping is written once (YAML 1.2.2 section 3.2.1.1); what loaders do with a second one differs:
- SGLang's server-argument files: `yaml.safe_load` keeps the last value (PyYAML's mapping constructor assigns each key
  in turn; sgl-project/sglang@03bd2f1 python/sglang/srt/server_args_config_parser.py `_parse_yaml_config`).
- Kubernetes objects: `kubectl apply -f` keeps the last value (a Pod written with `containers:` three times was created
  with the last list: kubernetes/kubernetes#125885, kubectl 1.27; keys inside a container likewise:
  kubernetes/kubernetes#89303), while kustomize and Flux refuse the file with "mapping key ... already defined"
  (rook/rook#16636, 2025-10; k8up-io/k8up#452).
- Dynamo v0 configs: `dynamo serve` loads the file with `yaml.safe_load` and keeps the last value (ai-dynamo/dynamo
  v0.1.1 deploy/dynamo/sdk/src/dynamo/sdk/cli/serve.py).
- Anything else (chart values, compose): the loader is not known here; read with the last value, said so.
"""

from __future__ import annotations

from ..model import Issue
from ..source import ConfigError, SourceDocument, Span, load_documents
from .sglang_config import SOURCE as SGLANG_SOURCE
from .sglang_config import looks_like_server_args

# reader, who refuses the file instead, source
_SGLANG = ("SGLang (yaml.safe_load)", "", SGLANG_SOURCE)
_KUBECTL = ("kubectl apply -f", "kustomize and Flux", "kubernetes/kubernetes#125885, rook/rook#16636")
_DYNAMO = ("dynamo serve (yaml.safe_load)", "", "ai-dynamo/dynamo v0.1.1 deploy/dynamo/sdk/src/dynamo/sdk/cli/serve.py")
_OTHER = ("PyYAML (as read here)", "strict YAML loaders", "YAML 1.2.2 section 3.2.1.1")


def read(path: str, text: str, error: ConfigError) -> tuple[list[SourceDocument] | None, list[Issue]]:
    """(documents read with each key's last value, the keys written twice), or (None, []) when the error is not a key
    written twice or the file does not load even so."""
    if "duplicate key" not in str(error):
        return None, []
    try:
        docs = load_documents(path, text, last_key_wins=True)
    except ConfigError:
        return None, []
    import yaml

    from ..config import looks_like_dynamo_v0
    from ..formats import kube_object

    server_args = len(docs) == 1 and looks_like_server_args(docs[0].data)
    twice = []
    for doc in docs:
        data = doc.data
        reader = _SGLANG if server_args else _KUBECTL if kube_object(data) else _DYNAMO if isinstance(data, dict) and looks_like_dynamo_v0(data) else _OTHER
        for keys, first, later, first_node, later_node in doc.marks.replaced:
            if server_args and len(keys) != 1:
                continue  # a server-argument file is read key by key at its top level
            first_value, later_value = (n.value if isinstance(n, yaml.ScalarNode) else yaml.serialize(n).strip() for n in (first_node, later_node))
            twice.append(Issue("key_twice", Span(later.line, later.column, later.line, later.column + len(str(keys[-1]))), ".".join(str(k) for k in keys),
                               data=(("first_line", first.line), ("first", first_value), ("last", later_value), ("reader", reader[0]),
                                     ("refused_by", reader[1]), ("source", reader[2]))))
    return docs, twice
