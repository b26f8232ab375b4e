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




def url_problem(url: str, what: str) -> str | None:
    """Why `url` cannot be what `what` takes (an http:// or https:// address with a host), or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        return f"{what} takes an http:// or https:// URL; {url!r}: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{what} takes an http:// or https:// URL with a host, such as http://127.0.0.1:8000; got {url!r}"
    return None
