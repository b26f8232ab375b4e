"""What `/config` serves: the allow-listed settings the runtime uses, never a secret, the file's text or its path;
kept keys stay on their lines, so the live doctor's findings on it point into the user's file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from disagg.runtime.plan import load_plan
from disagg.runtime.served_config import served_text
from disagg.schemas.source import load_documents

from .conftest import EXAMPLES

PLANTED = Path(__file__).resolve().parents[1] / "fixtures" / "serving" / "planted-secrets.yaml"
SECRET = re.compile(r"s3cr3t|hf_s3cr3t")
# The eight forms planted: a Bearer value, URL credentials, a query-string token, a connector's extra config, a flow
# mapping, a block scalar, a list of keys, env secrets (as a mapping and as a name/value list).
FORMS = ("bearer", "url", "query", "kvextra", "flow", "block", "list", "env")


def test_the_fixture_plants_every_form():
    text = PLANTED.read_text()
    for form in FORMS:
        assert f"s3cr3t-{form}" in text or form == "env", form
    assert "hf_s3cr3tEnvMap" in text and "s3cr3t-envlist" in text


def test_config_serves_none_of_the_planted_secrets_nor_the_path():
    plan = load_plan(str(PLANTED))
    served = json.dumps(plan.served)
    assert not SECRET.search(served), SECRET.findall(served)
    assert str(PLANTED.parent) not in served and plan.served["name"] == "planted-secrets.yaml"
    assert plan.served["block_size"] == 64 and plan.served["policy"]["max_local_prefill_length"] == 10
    assert plan.served["served_model_name"] == "tiny" and plan.served["ports"] == {"frontend": 8000}
    assert "PLAIN" not in served and "envs" not in served  # no env entry at all, secret-looking or not
    kept = yaml.safe_load(plan.served["text"])
    assert kept["VllmWorker"]["kv-transfer-config"] == '{"kv_connector":"DynamoNixlConnector"}'
    assert kept["Processor"]["served-model-name"] == "<redacted>"  # the key stays (a rule may look for it), its value not
    assert "upstream" not in kept["Processor"] and "download-url" not in kept["PrefillWorker"]  # not keys the runtime uses


def test_kept_keys_stay_on_their_lines_of_the_file():
    doc = load_documents(str(EXAMPLES / "seed-fixed.yaml"), (EXAMPLES / "seed-fixed.yaml").read_text())[0]
    text, in_place = served_text(doc)
    assert in_place
    original = (EXAMPLES / "seed-fixed.yaml").read_text().splitlines()
    for n, line in enumerate(text.splitlines()):
        if line.strip():
            key = line.split(":", 1)[0]
            assert original[n].startswith(key), (n + 1, line, original[n])


def test_the_live_doctor_finds_on_the_served_text_what_it_finds_in_the_file():
    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_paths, lint_text
    from disagg.doctor.registry import default_registry

    rules = [r for r in default_registry() if not r.live]
    for config in (EXAMPLES / "seed-broken.yaml", EXAMPLES / "seed-fixed.yaml"):
        plan = load_plan(str(config))
        [from_file] = lint_paths([str(config)], rules, LintOptions())
        from_served = lint_text(plan.served["name"], plan.served["text"], rules, LintOptions())
        want = {(f.code, f.line) for f in from_file.findings if f.code.startswith(("DG1", "DG2"))}
        got = {(f.code, f.line) for f in from_served.findings if f.code.startswith(("DG1", "DG2"))}
        assert got == want, (config.name, want, got)


def test_a_flow_style_file_is_served_renumbered_and_says_so(tmp_path):
    config = tmp_path / "flow.yaml"
    config.write_text('VllmWorker: {model: tiny, block-size: 16, remote-prefill: true, hf-auth: {token: s3cr3t-flow-x}}\n'
                      'PrefillWorker: {model: tiny, block-size: 16}\n')
    plan = load_plan(str(config))
    assert not SECRET.search(json.dumps(plan.served)) and plan.served["lines"].startswith("renumbered")
    assert yaml.safe_load(plan.served["text"])["VllmWorker"] == {"model": "tiny", "block-size": 16, "remote-prefill": True}
