"""The vLLM backend's chat prompt is the model's own template, rendered as transformers renders it for `vllm serve`."""

from __future__ import annotations

import json

import pytest

from disagg.runtime.backends.chat_template import ChatTemplateError, load_chat_template

pytest.importorskip("jinja2")

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def model_dir(tmp_path, **config):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    return str(tmp_path)


def test_the_template_in_tokenizer_config_is_used_with_the_generation_prompt(tmp_path):
    render = load_chat_template(model_dir(tmp_path, chat_template=CHATML))
    assert render([{"role": "user", "content": "hi"}]) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_special_tokens_named_templates_and_the_jinja_file(tmp_path):
    t = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
    render = load_chat_template(model_dir(tmp_path, bos_token={"content": "<s>"}, chat_template=[{"name": "tool_use", "template": "x"},
                                                                                                   {"name": "default", "template": t}]))
    assert render([{"role": "user", "content": "a"}]) == "<s>[user]a"
    other = tmp_path / "jinja"
    other.mkdir()
    (other / "tokenizer_config.json").write_text("{}")
    (other / "chat_template.jinja").write_text("{% for m in messages %}<{{ m['content'] }}>{% endfor %}")
    assert load_chat_template(str(other))([{"role": "user", "content": "b"}]) == "<b>"


def test_a_model_without_a_template_falls_back_and_a_refusal_is_a_client_error(tmp_path):
    assert load_chat_template(model_dir(tmp_path, bos_token="<s>")) is None
    strict = "{% if messages[0]['role'] != 'system' %}{{ raise_exception('a system message must come first') }}{% endif %}ok"
    render = load_chat_template(model_dir(tmp_path, chat_template=strict))
    with pytest.raises(ChatTemplateError, match="a system message must come first"):
        render([{"role": "user", "content": "x"}])
    assert render([{"role": "system", "content": "x"}]) == "ok"
