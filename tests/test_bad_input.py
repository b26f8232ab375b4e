"""Input that is not a config ends with exit 2 and `file:line:col: message`: no traceback, no hang, bounded memory.

Each case runs the real command in a child process; the memory check reads the child's peak RSS. The 2-second
budget is measured by bench/bench_doctor.py, not asserted here (shared machines are noisy); the timeout below only
guards against a hang.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *[f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")],
        "VllmWorker: {model: *i}",
    ]
)

CASES = {
    "malformed": (b"VllmWorker:\n  remote-prefill: [true\nPrefillWorker: {}\n", "invalid YAML"),
    "root-list": (b"- VllmWorker\n- PrefillWorker\n", "must be a mapping of service sections"),
    "root-scalar": (b"just a string\n", "must be a mapping"),
    "empty": (b"# only a comment\n", "empty document"),
    "not-utf8": (b"VllmWorker:\n  model: caf\xe9\n", "not UTF-8"),
    "binary": (bytes(range(256)) * 4, "binary file"),
    "alias-bomb": (BOMB.encode(), "alias bomb"),
    "deep-flow": (b"VllmWorker: " + b"[" * 10_000 + b"]" * 10_000 + b"\n", "invalid YAML"),
    "deep-block": ("".join(" " * i + "k:\n" for i in range(3_000)).encode(), "invalid YAML"),
    "python-tag": (b"VllmWorker:\n  model: !!python/object/apply:os.system ['true']\n", "invalid value"),
    "merge-of-a-scalar": (b"base: &b 5\nVllmWorker:\n  <<: *b\n", "merge key (<<) takes a mapping"),
    "complex-key": (b"VllmWorker:\n  ? [a, b]\n  : 1\n", "plain value"),
    "two-documents": (b"VllmWorker: {}\n---\nPrefillWorker: {}\n", "one YAML document"),
    "tab-indent": (b"VllmWorker:\n\tremote-prefill: true\n", "invalid YAML"),
}


def _run(path, *extra):
    """Run the doctor in a child; return (exit code, stdout, stderr, peak RSS of the doctor in MB)."""
    probe = (
        "import resource, subprocess, sys, json;"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=60);"
        "print(json.dumps([p.returncode, p.stdout, p.stderr, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))"
    )
    out = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "disagg", "doctor", str(path), *extra], capture_output=True, text=True, timeout=90)
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_a_located_error(name, tmp_path):
    data, message = CASES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    code, out, err, rss_mb = _run(path)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: error: .*{re.escape(message)}", out, re.M), out
    assert rss_mb < 200, f"{rss_mb:.0f} MB"


def test_a_key_written_twice_is_read_as_its_loader_reads_it(tmp_path):
    """Not a config error: `dynamo serve` (PyYAML) keeps the last value, so the file is read that way, the key written
    twice is a located DG407, and everything else is still checked (here: the last VllmWorker has no remote-prefill)."""
    path = tmp_path / "twice.yaml"
    path.write_bytes(b"VllmWorker:\n  remote-prefill: true\nPrefillWorker: {}\nVllmWorker: {}\n")
    code, out, err, _ = _run(path)
    assert code == 1 and "Traceback" not in out + err, (out, err)
    assert re.search(rf"^{re.escape(str(path))}:4:1: DG407 \[warning\] VllmWorker is written twice \(first at line 1\)", out, re.M), out
    assert re.search(rf"^{re.escape(str(path))}:4:1: DG101 \[error\]", out, re.M), out


def test_huge_file_is_refused_quickly(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as handle:
        handle.write(b"VllmWorker:\n")
        line = b"  # " + b"x" * 1020 + b"\n"
        for _ in range(50 * 1024):
            handle.write(line)
    code, out, err, rss_mb = _run(path)
    assert code == 2 and f"{path}:1:1: error:" in out and "MB" in out
    assert rss_mb < 200, f"{rss_mb:.0f} MB"


def test_missing_file_and_directory_as_file(tmp_path):
    code, out, _, _ = _run(tmp_path / "nope.yaml")
    assert code == 2 and "no such file" in out


def test_error_location_of_malformed_yaml_points_at_the_problem(cli, write):
    r = cli("doctor", write("VllmWorker:\n  model: m\n  remote-prefill: : true\n"))
    assert r.code == 2
    assert re.search(r":3:\d+: error: invalid YAML", r.out), r.out
