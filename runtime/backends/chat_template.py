"""A model's chat template, rendered as Hugging Face's `apply_chat_template` renders it for `vllm serve`.

Where the template is: `chat_template` in the model folder's tokenizer_config.json (a string, or a list of named
templates of which "default" is used), or the file chat_template.jinja beside it (newer transformers releases save it
there). It is rendered in a sandboxed Jinja2 environment with trim_blocks and lstrip_blocks, `raise_exception` and
`strftime_now`, the message list, `add_generation_prompt=True` and the tokenizer's special tokens (bos_token,
eos_token, ...), as transformers' chat_template_utils does. jinja2 comes with torch, which vLLM needs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

log = logging.getLogger("disagg.frontend")

class ChatTemplateError(ValueError):
    """The template refused the messages (its raise_exception, or an error rendering them): a client error."""


_SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token")


def read_template(model_dir: str) -> tuple[str | None, dict]:
    """(template text or None, tokenizer_config)."""
    config: dict = {}
    try:
        with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        pass
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if not isinstance(template, str):
        template = None
        try:
            with open(os.path.join(model_dir, "chat_template.jinja"), encoding="utf-8") as handle:
                template = handle.read()
        except OSError:
            pass
    return template, config


def load_chat_template(model_dir: str) -> Callable[[list[dict]], str] | None:
    """`messages -> prompt text` with the model's template, or None (logged) when the model has none."""
    template, config = read_template(model_dir)
    if template is None:
        log.warning("%s has no chat template (tokenizer_config.json chat_template, chat_template.jinja): chat prompts use the "
                    "plain 'role: content' template", model_dir)
        return None
    from datetime import datetime

    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    compiled = env.from_string(template)
    special = {k: (v.get("content") if isinstance(v, dict) else v) for k, v in config.items() if k in _SPECIAL}

    def render(messages: list[dict]) -> str:
        try:
            return compiled.render(messages=messages, add_generation_prompt=True, **special)
        except TemplateError as exc:
            raise ChatTemplateError(f"the model's chat template refused the messages: {exc}") from None

    return render
