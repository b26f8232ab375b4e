"""Where the knowledge generator's bytes come from: PyPI release lists, whole wheels (`pip download`), and a few
members of a large wheel read by HTTP range requests (the zip's directory, then those members)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

_FINAL = re.compile(r"^\d+(\.\d+)*(\.post\d+)?$")


def version_key(v: str) -> tuple:
    main, _, post = v.partition(".post")
    return tuple(int(x) for x in main.split(".")) + (int(post or 0),)


def releases(package: str, minimum: str) -> dict[str, str]:
    """Release name (as image tags write it) -> the version to download: a .postN re-release replaces its base."""
    out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", package], capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("Available versions:"))
    found = [v.strip() for v in line.split(":", 1)[1].split(",")]
    finals = sorted((v for v in found if _FINAL.match(v) and version_key(v) >= version_key(minimum)), key=version_key)
    by_base: dict[str, str] = {}
    for v in finals:
        by_base[v.partition(".post")[0]] = v
    return dict(sorted(by_base.items(), key=lambda kv: version_key(kv[0])))


def wheel(package: str, version: str, cache: Path) -> Path:
    folder = cache / f"{package}-{version}"
    found = list(folder.glob("*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"{package}=={version}", "-d", str(folder)], check=True)
        found = list(folder.glob("*.whl"))
    return found[0]


class _RangeFile(io.RawIOBase):
    """A read-only file over HTTP range requests, enough for zipfile to read a wheel's directory and a few members."""

    def __init__(self, url: str):
        self.url, self.pos = url, 0
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60) as r:
            self.size = int(r.headers["Content-Length"])

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def readinto(self, buf) -> int:
        n = min(len(buf), self.size - self.pos)
        if n <= 0:
            return 0
        req = urllib.request.Request(self.url, headers={"Range": f"bytes={self.pos}-{self.pos + n - 1}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            data = r.read()
        buf[: len(data)] = data
        self.pos += len(data)
        return len(data)


def wheel_url(package: str, version: str) -> str | None:
    """The URL of a release's x86_64 Linux (or pure-Python) wheel on PyPI, from the simple index."""
    with urllib.request.urlopen(f"https://pypi.org/simple/{package}/", timeout=60) as r:
        page = r.read().decode()
    names = re.findall(r'href="([^"#]+/([^/"#]+\.whl))', page)
    stem = package.replace("-", "_")
    for url, name in names:
        if name.startswith(f"{stem}-{version}-") and ("x86_64" in name or name.endswith("-none-any.whl")):
            return url
    return None


def remote_members(package: str, version: str, members: tuple[str, ...], cache: Path) -> dict[str, str]:
    """Some members of a release's wheel, cached as files: {member: text} (missing members are left out)."""
    folder = cache / f"{package}-{version}-members"
    done = folder / ".done"
    if not done.exists():
        url = wheel_url(package, version)
        if url is None:
            return {}
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BufferedReader(_RangeFile(url), buffer_size=1 << 20)) as zf:
            names = set(zf.namelist())
            for m in members:
                if m in names:
                    (folder / m.replace("/", "__")).write_bytes(zf.read(m))
        done.write_text(url)
    return {m: (folder / m.replace("/", "__")).read_text("utf-8", "replace") for m in members if (folder / m.replace("/", "__")).exists()}
