"""Docker Compose files: each service that runs an engine, with its environment, network mode, GPU reservation and
devices (Compose spec: services.command/entrypoint, environment, env_file, network_mode, devices,
deploy.resources.reservations.devices)."""

from __future__ import annotations

from typing import Any

from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting
from ..source import SourceDocument


def looks_like_compose(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("services"), dict) and "kind" not in data and any(
        isinstance(s, dict) and ("image" in s or "command" in s or "build" in s) for s in data["services"].values())


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    from ..shell import ShellReader
    from .common import container_launches, dig, env_from_k8s, new_worker

    dep.format = "compose"
    reader = ShellReader(doc.text)
    for sname, svc in doc.data["services"].items():
        if not isinstance(svc, dict):
            continue
        base = ("services", sname)
        env = env_from_k8s(doc, base + ("environment",), svc.get("environment"))
        host = Host("node", "compose host", f"host:{doc.path}") if svc.get("network_mode") == "host" else Host("container", str(sname), f"container:{doc.path}:{sname}")
        image = svc.get("image") if isinstance(svc.get("image"), str) else None
        for launch in container_launches(doc, base, svc, env, reader, image, keys=("entrypoint", "command")):
            w = new_worker(launch.command, path=doc.path, name=str(sname), host=host, hints=launch.hints + [str(sname)], env=launch.env,
                           target=target, image=image)
            w.settings.setdefault("rdma", _compose_rdma(svc.get("devices")))
            _env_file_unknowns(w, svc.get("env_file"))
            devices = dig(svc, "deploy", "resources", "reservations", "devices")
            if isinstance(devices, list) and devices and isinstance(devices[0], dict) and "count" in devices[0]:
                try:
                    w.gpus = Setting(int(devices[0]["count"]), None, "deploy.resources.reservations.devices")
                except (TypeError, ValueError):
                    pass
            dep.workers.append(w)


def _env_file_unknowns(w, env_file: Any) -> None:
    """A compose service's `env_file:` (a path, a list of paths, or of {path, required}) sets variables this file does
    not show: each setting the doctor reads from the environment (engines.ENV_SETTINGS) that neither the service's
    `environment:` nor its command sets is Unknown, not unset (Compose spec: services.env_file)."""
    items = env_file if isinstance(env_file, list) else [env_file] if env_file is not None else []
    from .common import env_files_unknown

    env_files_unknown(w, [str(e.get("path")) if isinstance(e, dict) else str(e) for e in items], "env_file")


def _compose_rdma(devices: Any) -> Setting:
    """Whether a compose service maps the host's RDMA devices into its container (`devices:` short syntax
    `/dev/infiniband[:...]`, or the long syntax's `source`): the verbs device files UCX's InfiniBand transports open
    (rdma-core: /dev/infiniband/uverbsN), compose's way to give a container RDMA, as `rdma/...` resources are
    Kubernetes'. Compose spec: services.devices."""
    found = False
    for d in devices if isinstance(devices, list) else ():
        src = d.get("source") if isinstance(d, dict) else d
        if isinstance(src, str) and (src == "/dev/infiniband" or src.startswith(("/dev/infiniband:", "/dev/infiniband/"))):
            found = True
    return Setting(found, None, "devices")
