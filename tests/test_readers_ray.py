"""Ray Serve LLM P/D applications (schemas/readers/ray_serve.py): read when the application's import_path is Ray's
own P/D builder, set aside as "not a serving config I know" when it is the user's (fixtures in
tests/fixtures/readers/ray/, written for these tests)."""

from __future__ import annotations

from test_readers import HERE, RULES, codes, lint

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text


def test_ray_pd_builder_gives_prefill_and_decode_from_their_fields_with_engine_kwargs_as_vllm_flags():
    r = lint("ray/pd-app.yaml")
    assert not r.error and not r.skipped
    ws = {w.role: w for w in r.deployment.workers}
    p, d = ws["prefill"], ws["decode"]
    assert (p.role_why, p.role_from) == ("prefill_config of ray.serve.llm:build_pd_openai_app", "field")
    assert (p.value("tp"), d.value("tp")) == ("2", "4")
    assert p.value("kv_connector") == d.value("kv_connector") == "NixlConnector"
    assert p.value("model") == "Qwen/Qwen2.5-7B-Instruct" and p.value("ucx_tls") == "rc,cuda_copy"  # the application's runtime_env
    assert p.value("enable_prefix_caching") is False
    assert (p.replicas.value, p.replicas.span.line) == (0, 15)
    assert (d.replicas.value, d.settings["autoscaled"].value) == (2, 2)
    assert len(r.pairs) == 1
    [f] = [f for f in r.findings if f.code == "DG104"]  # num_replicas: 0 is zero prefill capacity
    assert (f.line, f.severity.label) == (15, "error")


def test_ray_autoscaling_floor_zero_is_a_note_and_a_kv_role_typo_is_found_where_written():
    r = lint("ray/pd-app-role-typo.yaml")
    [f104] = [f for f in r.findings if f.code == "DG104"]
    assert f104.severity.label == "info" and f104.line == 11  # min_replicas 0: Ray scales it up when traffic comes
    [f214] = [f for f in r.findings if f.code == "DG214"]
    assert f214.line == 16 and "kv_bothh" in f214.message
    d = next(w for w in r.deployment.workers if w.role == "decode")
    assert not d.settings["kv_connector"].known  # no kv_transfer_config: Ray's default changed between releases
    assert codes(r, "error") == set()


def test_a_serve_config_of_a_user_builder_is_not_read_as_rays():
    r = lint("ray/user-builder.yaml")
    assert r.deployment is None and not r.error
    assert "my_builders:make_pd_app" in r.skipped and "not a serving config I know" in r.skipped


def test_ray_reader_leaves_a_plain_yaml_with_applications_alone():
    text = (HERE / "ray" / "pd-app.yaml").read_text().replace("import_path: ray.serve.llm:build_pd_openai_app", "")
    r = lint_text("x.yaml", text, RULES, LintOptions())
    assert r.deployment is None  # no import_path: not a Serve application, never read by resemblance


def test_another_engine_or_server_class_is_read_but_not_checked_as_vllm():
    text = (HERE / "ray" / "pd-app.yaml").read_text().replace("      decode_config:\n", "      decode_config:\n        server_cls: my_pkg:MyServer\n")
    r = lint_text("x.yaml", text, RULES, LintOptions())
    d = next(w for w in r.deployment.workers if w.role == "decode")
    assert d.engine is None and any("my_pkg:MyServer" in n for n in d.notes)
    p = next(w for w in r.deployment.workers if w.role == "prefill")
    assert p.engine == "vllm"


def test_an_llm_config_in_another_file_is_named_and_not_checked():
    text = (HERE / "ray" / "pd-app.yaml").read_text().replace("      prefill_config:\n", "      prefill_config: configs/prefill.yaml\n      unused:\n")
    r = lint_text("x.yaml", text, RULES, LintOptions())
    p = next(w for w in r.deployment.workers if w.role == "prefill")
    assert not p.settings["kv_connector"].known and "configs/prefill.yaml" in p.notes[0]
    [f] = [f for f in r.findings if f.code == "DG405"]
    assert f.line == 10 and "configs/prefill.yaml" in f.message
