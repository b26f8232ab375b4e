"""AWS ECS task definitions (the JSON that `aws ecs register-task-definition --cli-input-json` takes, bare or under
`taskDefinition` as `describe-task-definition` prints it) into the deployment model.

Every fact here is from AWS's "Amazon ECS task definition parameters"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html):
- `containerDefinitions[]`: `name` and `image` are required; `entryPoint` maps to Docker's `Entrypoint` (`docker run
  --entrypoint`) and `command` to its `Cmd` (the COMMAND of `docker run`), so a container runs `entryPoint + command`
  as one argv, and one with `command` only runs its image's entrypoint with `command` as its arguments, as a
  Kubernetes container with `args` only does; `environment` is a list of `{name, value}`; `environmentFiles` are S3
  objects of variables, not in the file; `workingDirectory` is the folder the command runs in;
  `resourceRequirements[{type: GPU, value}]` the GPUs the container reserves.
- `networkMode`: `host` (the container instance's network: the instance is the one ECS places the task on, which the
  file does not name), `awsvpc` (one network interface per task, its containers share it), `bridge` (Docker's bridge:
  each container its own network namespace; the default for Linux containers on EC2 when unset) or `none`.
ECS does not expand `$(VAR)` in `command` (that is Kubernetes'). How many tasks run is the ECS service's
`desiredCount` (or `run-task --count`), which a task definition does not hold.

The containers' commands go through the same path as Kubernetes containers (`common.container_launches`).
"""

from __future__ import annotations

from typing import Any

from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Unknown
from ..shell import ShellReader
from ..source import SourceDocument, Span
from .common import container_launches, env_files_unknown, env_from_k8s, new_worker

ECS_DOCS = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html"


def task_definition(data: Any) -> tuple[tuple, dict] | None:
    """(where the task definition sits, the task definition) when `data` declares one: a `containerDefinitions` list
    whose entries are container definitions (each with its required `name` and `image`), else None."""
    for base in ((), ("taskDefinition",)):
        node = data
        for key in base:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or "kind" in node or "apiVersion" in node:
            continue
        defs = node.get("containerDefinitions")
        if isinstance(defs, list) and defs and all(isinstance(c, dict) and "name" in c and "image" in c for c in defs):
            return base, node
    return None


def looks_like_task_definition(data: Any) -> bool:
    return task_definition(data) is not None


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    found = task_definition(doc.data)
    if found is None:
        return
    base, task = found
    dep.format = "ecs-task-definition"
    family = str(task.get("family") or "task")
    mode = str(task.get("networkMode") or "bridge")
    reader = ShellReader(doc.text)
    for ci, c in enumerate(task["containerDefinitions"]):
        cbase = base + ("containerDefinitions", ci)
        cname = str(c.get("name"))
        env = env_from_k8s(doc, cbase + ("environment",), c.get("environment"))
        image = c.get("image") if isinstance(c.get("image"), str) else None
        view = {k: c[k] for k in ("entryPoint", "command") if k in c}
        view["workingDir"] = c.get("workingDirectory") or ""
        for launch in container_launches(doc, cbase, view, env, reader, image, keys=("entryPoint", "command")):
            w = new_worker(launch.command, path=doc.path, name=f"{family}/{cname}", host=_host(doc.path, family, cname, mode),
                           hints=launch.hints + [cname], env=launch.env, target=target, image=image)
            w.alternative = launch.alternative
            w.replicas = Setting(Unknown("how many tasks run is the ECS service's desiredCount (or run-task --count), which a task "
                                         "definition does not hold"), None, "task definition")
            w.gpus = _gpus(doc, cbase, c.get("resourceRequirements"))
            files = c.get("environmentFiles") if isinstance(c.get("environmentFiles"), list) else []
            env_files_unknown(w, [str(f.get("value")) if isinstance(f, dict) else str(f) for f in files], "environmentFiles")
            dep.workers.append(w)


def _host(path: str, family: str, container: str, mode: str) -> Host:
    if mode == "host":  # the instance ECS places the task on, not named here: it may be another task's (Host.apart: unknown)
        return Host("node", f"unpinned:{family}", f"unpinned-host:{path}:{family}")
    if mode == "awsvpc":  # one network interface per task, shared by its containers
        return Host("pod", family, f"ecs-task:{path}:{family}")
    return Host("container", f"{family}/{container}", f"container:{path}:{family}/{container}")


def _gpus(doc: SourceDocument, base: tuple, requirements: Any) -> Setting:
    for i, r in enumerate(requirements if isinstance(requirements, list) else ()):
        if isinstance(r, dict) and str(r.get("type")) == "GPU":
            try:
                n = int(str(r.get("value")))
            except ValueError:
                continue
            return Setting(n, Span(*doc.marks.value(base + ("resourceRequirements", i, "value"))), "resourceRequirements GPU")
    return Setting(None, None, "unset")


__all__ = ["ECS_DOCS", "looks_like_task_definition", "read", "task_definition"]
