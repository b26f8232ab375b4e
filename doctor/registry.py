"""Rules and the registry that holds them: one class per rule, documented by its docstring, codes unique."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, ClassVar

from .finding import Finding, Severity

if TYPE_CHECKING:
    from .context import LintContext

DOC_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead")
ROLE_GUESSED = ("when a worker's prefill or decode role rests only on a name, not on anything it runs with, or its pair is one guess among "
                "alternative files")


class Rule:
    """Base of every rule. Subclasses set `code`, `name`, `severity` and write `check`.

    The docstring is the rule's documentation, in `## What it does`, `## Why is this bad?`, `## Example`,
    `## Use instead` and optionally `## Options` sections; `disagg doctor --explain CODE` prints it.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]
    live: ClassVar[bool] = False  # live rules (DG5xx) read a running deployment, not the config alone
    also: ClassVar[dict[Severity, str]] = {}  # other severities some findings take, and when (documented, tested)
    on_roles: ClassVar[bool] = False  # its verdict rests on which worker is prefill and which decode: capped at info when only a name says

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        if cls.on_roles and cls.__dict__.get("severity", Severity.INFO) > Severity.INFO and ROLE_GUESSED not in cls.also.get(Severity.INFO, ""):
            said = cls.also.get(Severity.INFO)
            cls.also = {**cls.also, Severity.INFO: f"{said}; or {ROLE_GUESSED}" if said else ROLE_GUESSED}

    def check(self, ctx: "LintContext") -> Iterable[Finding]:
        raise NotImplementedError

    @classmethod
    def doc(cls) -> str:
        import inspect

        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        """The first sentence of `What it does`."""
        body = doc_sections(cls.doc()).get("What it does", "")
        return " ".join(body.split()).split(". ")[0].rstrip(".")

    @classmethod
    def severities(cls) -> str:
        """`error`, or `error; warning: when ...` for a rule whose findings take other severities too."""
        return "; ".join([cls.severity.label] + [f"{sev.label}: {when}" for sev, when in cls.also.items()])


def doc_sections(doc: str) -> dict[str, str]:
    parts = re.split(r"^## +(.+?) *$", doc, flags=re.M)
    return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


class DuplicateRuleError(ValueError):
    pass


class RuleRegistry:
    def __init__(self) -> None:
        self._rules: dict[str, type[Rule]] = {}

    def register(self, rule: type[Rule]) -> type[Rule]:
        if rule.code in self._rules:
            raise DuplicateRuleError(f"rule code {rule.code} registered twice ({self._rules[rule.code].__name__} and {rule.__name__})")
        if not re.fullmatch(r"DG[1-9][0-9]{2}", rule.code):
            raise ValueError(f"rule code {rule.code!r} does not look like DG123")
        self._rules[rule.code] = rule
        return rule

    def __iter__(self) -> Iterator[type[Rule]]:
        return iter(sorted(self._rules.values(), key=lambda r: r.code))

    def __len__(self) -> int:
        return len(self._rules)

    def get(self, code: str) -> type[Rule] | None:
        return self._rules.get(code.upper())

    def find(self, code_or_name: str) -> type[Rule] | None:
        """A rule by code (DG205) or by name (model-mismatch), as ruff's `rule` command takes either."""
        key = code_or_name.strip()
        return self.get(key) or next((r for r in self._rules.values() if r.name == key.lower().replace("_", "-")), None)

    def codes(self) -> list[str]:
        return sorted(self._rules)

    def select(self, select: Iterable[str] = ("ALL",), ignore: Iterable[str] = (), extend_select: Iterable[str] = ()) -> list[type[Rule]]:
        """Rules chosen by code, code prefix or ALL, as ruff does: select (+ extend-select) minus ignore."""
        chosen = {c for c in self._rules if any(matches(c, s) for s in [*select, *extend_select])}
        chosen -= {c for c in self._rules if any(matches(c, s) for s in ignore)}
        return [self._rules[c] for c in sorted(chosen)]

    def check_selector(self, selector: str) -> bool:
        """True when a selector names at least one rule."""
        return any(matches(c, selector) for c in self._rules)


def matches(code: str, selector: str, exact: bool = False) -> bool:
    """A code matches ALL, itself, or a prefix of it (DG1); `exact` for a full code such as a noqa comment's."""
    selector = selector.strip().upper()
    if selector == "ALL":
        return True
    return code == selector if exact else code.startswith(selector)


_REGISTRY: RuleRegistry | None = None


def default_registry() -> RuleRegistry:
    """Every rule shipped with disagg, imported once."""
    global _REGISTRY
    if _REGISTRY is None:
        from .rules import RULE_MODULES

        reg = RuleRegistry()
        for module_name in RULE_MODULES:
            module = importlib.import_module(f"{__package__}.rules.{module_name}")
            reg.register(getattr(module, module_name.rsplit(".", 1)[-1]))
        _REGISTRY = reg
    return _REGISTRY
