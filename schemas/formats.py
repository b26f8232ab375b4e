"""The input formats the doctor reads (`--format`), in one place: the readers dispatch on them and the command line
offers them. Imports nothing, so the command line can name them before any reader loads."""

FORMATS = ("auto", "dynamo-v0", "kubernetes", "compose", "llm-d", "script", "trtllm", "helm-values")

# Shell scripts by their names. A Slurm job script is a shell script by its first line instead: sbatch refuses a batch
# script whose first line is not `#!` and an interpreter (SchedMD/slurm src/sbatch/sbatch.c, has_shebang: "This does not
# look like a batch script"), so a *.slurm / *.sbatch file is read as a script when that line names a shell.
SCRIPT_SUFFIXES = (".sh", ".bash")
YAML_SUFFIXES = (".yaml", ".yml")
JOB_SCRIPT_SUFFIXES = (".slurm", ".sbatch")
SHELLS = ("bash", "sh", "dash", "zsh", "ksh")
# Justfiles by name (`justfile` in any case, `.justfile`) and `.just` modules: what readers/justfile.py reads
JUSTFILE_NAMES = ("justfile", ".justfile")
JUST_SUFFIX = ".just"


def is_justfile(path: str) -> bool:
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    return base.lower() in JUSTFILE_NAMES or base.endswith(JUST_SUFFIX)


def shebang_program(line: str) -> str:
    """The program a `#!` line names (`#!/usr/bin/env -S python3 -u` -> python3, `#!/bin/bash -l` -> bash)."""
    words = [w.rsplit("/", 1)[-1] for w in line.strip()[2:].split()]
    if words and words[0] == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    return words[0] if words else ""


def shell_shebang(first_line: str) -> bool:
    """Whether a `#!` line runs a shell (`#!/bin/bash`, `#!/usr/bin/env bash`, `#!/bin/sh -l`)."""
    return first_line.startswith("#!") and shebang_program(first_line) in SHELLS


def kube_object(data: object) -> bool:
    """A Kubernetes object, by what it declares: `apiVersion` and `kind` at its top level (any group)."""
    return isinstance(data, dict) and "kind" in data and "apiVersion" in data


# Jinja templates of a config, by their suffix after the config's own (`deploy.yaml.j2`, `run.sh.jinja`): read as
# their config's format, with what the template fills in unknown (readers/jinja.py)
TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")


def untemplated(path: str) -> str | None:
    """The name a Jinja template of a YAML file or a script renders to (`run.sh.j2` -> `run.sh`), or None for any
    other file (a template of JSON, of text, or no template)."""
    for suffix in TEMPLATE_SUFFIXES:
        if path.endswith(suffix) and len(path) > len(suffix):
            rendered = path[: -len(suffix)]
            return rendered if rendered.endswith(YAML_SUFFIXES + SCRIPT_SUFFIXES) else None
    return None
