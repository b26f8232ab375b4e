"""The checked-in JSON Schema is generated from the pydantic models and must not go stale."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import EXAMPLES, ROOT

SCHEMA = ROOT / "schemas" / "dynamo-v0.schema.json"
SHARED = ROOT.parent / "shared"


def test_checked_in_schema_is_current():
    from disagg.schemas.dynamo_v0 import json_schema_text

    checked_in = (ROOT / "schemas" / "dynamo-v0.schema.json").read_text()
    assert checked_in == json_schema_text(), "stale: run `python -m disagg.schemas.dynamo_v0 > schemas/dynamo-v0.schema.json`"


def test_installed_package_carries_the_schema():
    from disagg.schemas.typecheck import SCHEMA_FILE

    assert os.path.isfile(SCHEMA_FILE)


def test_examples_validate_against_the_schema_as_an_editor_would():
    schema = json.loads((ROOT / "schemas" / "dynamo-v0.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for path in EXAMPLES.glob("*.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/dynamo-v0.schema.json")
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert not errors, (path.name, [e.message for e in errors])
    bad = {"VllmWorker": {"remote-prefill": "yes"}}
    assert list(validator.iter_errors(bad))


def test_fields_carry_their_docstrings_as_descriptions():
    schema = json.loads((ROOT / "schemas" / "dynamo-v0.schema.json").read_text())
    prop = schema["$defs"]["VllmWorkerSection"]["properties"]["remote-prefill"]
    assert "Master switch" in prop["description"] and prop["default"] is False


def real_v0_configs() -> list[Path]:
    """Every Dynamo v0 config among the real public configs in ../shared (reference and field)."""
    from disagg.schemas.config import looks_like_dynamo_v0

    found = []
    for path in sorted([*SHARED.glob("reference/*/*.yaml"), *SHARED.glob("field/*.yaml"), *SHARED.glob("field/*.yml")]):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue
        if any(looks_like_dynamo_v0(d) for d in docs):
            found.append(path)
    return found


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).with_name("check-jsonschema"))
    if not Path(exe).exists():
        pytest.skip("check-jsonschema is not installed (it comes with the test extra)")
    return subprocess.run([exe, "--schemafile", str(SCHEMA), *map(str, files)], capture_output=True, text=True, timeout=120)


def test_every_real_v0_config_is_valid_for_editors():
    """The closed sets hold no false alarm: the schema accepts every real Dynamo v0 config we have."""
    configs = real_v0_configs()
    if not configs:
        pytest.skip("../shared holds no Dynamo v0 configs here")
    assert len(configs) >= 20
    r = check_jsonschema(*configs, *EXAMPLES.glob("*.yaml"))
    assert r.returncode == 0, r.stdout + r.stderr


TYPOS = {
    "section name": ("VLLMWorker:\n  remote-prefill: true\n", "VLLMWorker"),
    "key typo": ("VllmWorker:\n  max-local-prefill-lenght: 10\n", "max-local-prefill-lenght"),
    "switch on the prefill worker": ("PrefillWorker:\n  remote-prefill: true\n", "remote-prefill"),
    "wrong type": ('VllmWorker:\n  remote-prefill: "yes"\n', "remote-prefill"),
    "not a number": ("VllmWorker:\n  ServiceArgs:\n    resources:\n      gpu: four\n", "gpu"),
    "frontend key": ("Frontend:\n  prot: 8000\n", "prot"),
    "service args key": ("VllmWorker:\n  ServiceArgs:\n    worker: 2\n", "worker"),
}


@pytest.mark.parametrize("case", sorted(TYPOS))
def test_editors_flag_the_mistakes_this_tool_exists_for(case, tmp_path):
    text, culprit = TYPOS[case]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    r = check_jsonschema(path)
    assert r.returncode == 1, r.stdout
    errors = list(jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).iter_errors(yaml.safe_load(text)))
    assert errors and any(culprit in json.dumps(list(e.absolute_path)) + e.message + "".join(c.message for c in e.context or ()) for e in errors), errors


def test_the_spellings_engines_accept_are_valid(tmp_path):
    """vLLM reads `remote_prefill` as `remote-prefill`, and Dynamo's pydantic config took numeric strings."""
    path = tmp_path / "config.yaml"
    path.write_text('VllmWorker:\n  remote_prefill: true\n  max_local_prefill_length: 10\n  enforce_eager: true\n'
                    '  ServiceArgs:\n    workers: "2"\n    resources: {gpu: "1"}\nVllmDecodeWorker:\n  data_parallel_size_local: 2\n')
    r = check_jsonschema(path)
    assert r.returncode == 0, r.stdout + r.stderr
