"""The checked-in JSON Schema is generated from the pydantic models and must not go stale."""

from __future__ import annotations

import json
import os

import jsonschema
import yaml

from conftest import EXAMPLES, ROOT


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
