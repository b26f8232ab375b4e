"""What every subcommand shares: exit codes and the one way to report a usage error."""

from __future__ import annotations

import sys

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_INTERNAL = 3  # the doctor itself failed on some input (a reader or a rule raised): what it reported is incomplete


def err(message: str) -> int:
    print(f"disagg: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def codes(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(c.strip() for c in v.split(",") if c.strip())
    return out


def runtime_missing() -> str | None:
    import importlib.util

    missing = [m for m in ("aiohttp", "prometheus_client", "numpy") if importlib.util.find_spec(m) is None]
    if missing:
        return f"the runtime needs {', '.join(missing)}: pip install 'disagg[serve]' (or, from a checkout, pip install '.[serve]')"
    return None


