"""One model for every format: the same prefill/decode pair, built in each format real repositories use, is read
into the same workers and gets the same findings (tests/formats.py builds them)."""

from __future__ import annotations

import pytest
from formats import BASE, FORMATS

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_results, read_file
from disagg.doctor.registry import default_registry

RULES = [r for r in default_registry() if not r.live]

# change -> the code that must report it. Keys starting with "prefill:" change the prefill side only.
VARIANTS = {
    "correct": ({}, None),
    "model": ({"model": "Qwen/Qwen3-14B"}, "DG205"),
    "block size": ({"prefill:block": "32"}, "DG203"),  # a larger prefill block cannot be split (a smaller one can)
    "tp ratio": ({"prefill:tp": "2"}, "DG204"),
    "dtype": ({"dtype": "float16"}, "DG206"),
    "connector presence": ({"connector": False}, "DG201"),
    "side-channel port": ({"both:port": "5600"}, "DG207"),  # both instances in one network with one port
}
# what each engine family can express: TensorRT-LLM has no dtype flag and its TP rule differs; DG204 is the NIXL
# connector's TP rule, and vLLM V0's PyNcclConnector maps ranks its own way
NOT_FOR = {"trtllm": {"tp ratio"}, "dynamo-v0": {"side-channel port"}, "pynccl-v0": {"tp ratio"}}


def lint_files(files: dict[str, str], tmp_path) -> list:
    results = []
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        results.append(read_file(str(path), text, LintOptions()))
    return lint_results(results, RULES, LintOptions())


def _specs(change: dict) -> tuple[dict, dict]:
    p, d = dict(BASE), dict(BASE)
    for key, value in change.items():
        if key.startswith("prefill:"):
            p[key[8:]] = value
        elif key.startswith("both:"):
            p[key[5:]] = d[key[5:]] = value
        else:
            d[key] = value
    return p, d


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_mismatched_pair_is_caught_in_every_format(fmt, variant, tmp_path):
    make, cannot = FORMATS[fmt]
    if variant in cannot or variant in NOT_FOR.get(fmt, set()):
        pytest.skip(f"{fmt} cannot express a {variant} difference")
    change, code = VARIANTS[variant]
    p, d = _specs(change)
    results = lint_files(make(p, d), tmp_path)
    assert all(r.error is None for r in results), [r.error for r in results]
    pairs = {id(x) for r in results for x in r.pairs}
    assert pairs, f"{fmt}: no prefill/decode pair formed: {[(w.name, w.role) for r in results for w in r.deployment.workers]}"
    errors = {f.code for r in results for f in r.findings if f.severity.label == "error"}
    if code is None:
        assert not errors, [f.message for r in results for f in r.findings]
    else:
        assert code in errors, [(f.code, f.message) for r in results for f in r.findings]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_reads_the_same_pair(fmt, tmp_path):
    results = lint_files(FORMATS[fmt][0](dict(BASE), dict(BASE)), tmp_path)
    workers = [w for r in results for w in r.deployment.workers if w.role in ("prefill", "decode")]
    assert sorted(w.role for w in workers) == ["decode", "prefill"], [(w.name, w.role, w.role_why) for w in workers]
    for w in workers:
        model = w.known("model")
        assert model == BASE["model"], (w.name, w.settings.get("model"))
        if fmt not in ("modelservice-values",):
            assert str(w.known("tp")) == BASE["tp"], (w.name, w.settings.get("tp"))
        assert w.settings.get("model").span is not None, "every value keeps its source position"
