"""`[tool.disagg]` settings from the nearest `pyproject.toml` above the working directory; flags override them."""

from __future__ import annotations

import os
from typing import Any

KNOWN = {
    "select": list,
    "extend-select": list,
    "ignore": list,
    "exclude": list,
    "output-format": str,
    "fail-level": str,
    "gpus": int,
    "workload": str,
    "target-version": (str, dict),
    "unsafe-fixes": bool,
}


class SettingsError(ValueError):
    pass


class Settings:
    def __init__(self, source: str | None = None, values: dict[str, Any] | None = None):
        self.source = source
        self.values = values or {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def find_pyproject(start: str) -> str | None:
    folder = os.path.abspath(start)
    while True:
        candidate = os.path.join(folder, "pyproject.toml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def load_settings(start=None) -> Settings:
    path = find_pyproject(os.path.realpath(str(start) if start is not None else os.getcwd()))
    if path is None:
        return Settings()
    import tomllib

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read settings: {exc}") from None
    table = data.get("tool", {}).get("disagg")
    if table is None:
        return Settings()
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [tool.disagg] must be a table")
    values = {}
    for key, value in table.items():
        norm = key.replace("_", "-")
        if norm not in KNOWN:
            raise SettingsError(f"{path}: [tool.disagg] unknown key {key!r}; known: {', '.join(sorted(KNOWN))}")
        want = KNOWN[norm]
        if want is list and isinstance(value, str):
            value = [value]
        if want is bool:
            if not isinstance(value, bool):
                raise SettingsError(f"{path}: [tool.disagg] {key} must be true or false")
        elif not isinstance(value, want) or isinstance(value, bool):
            names = " or ".join(t.__name__ for t in want) if isinstance(want, tuple) else want.__name__
            raise SettingsError(f"{path}: [tool.disagg] {key} must be a {names}")
        values[norm] = value
    return Settings(source=str(path), values=values)
