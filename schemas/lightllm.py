"""LightLLM's server (`python -m lightllm.server.api_server`): its settings under the doctor's names, its role from
`--run_mode`, and the pd_master its prefill and decode servers register with (which is what pairs them).

Source for every fact here: ModelTC/lightllm@fc72ffab9a3455cfb571f22d45ab777cc29de0de (2025-07):
* lightllm/server/api_cli.py:7-16: `--run_mode`, choices normal, prefill, decode, pd_master, config_server, default
  normal; :17-18 `--host` (default 127.0.0.1), `--port` (default 8000, the server's own HTTP port); :27-38
  `--pd_master_ip` (default 0.0.0.0) and `--pd_master_port` (default 1212); :45-56 `--config_server_host` and
  `--config_server_port` (default None); :64-69 `--model_dir`; :131 `--tp`; :132-139 `--dp` (data-parallel attention
  inside the tp ranks: "set dp to be equal to the tp parameter", not replicas of the tp group); :288-292
  `--data_type`.
* lightllm/server/api_server.py:10-15: pd_master and config_server run their own start functions, every other mode
  normal_or_p_d_start (a model server).
* lightllm/server/api_start.py:188 and lightllm/server/router/manager.py:40-41,120-131: one node runs `tp // nnodes`
  ranks, one process per GPU (dp takes no GPUs of its own); `--nnodes` defaults to 1 (api_cli.py:117).
* lightllm/server/httpserver/pd_loop.py:129-141: a prefill or decode server connects to the one pd_master at
  `--pd_master_ip:--pd_master_port`, unless both `--config_server_host` and `--config_server_port` are set: then to
  every pd_master the config server lists (:143-152), and registers there (:73-91, `ws://.../pd_register`, with its
  mode and start arguments).
* lightllm/server/httpserver_for_pd_master/manager.py:54-65,108-114: the pd_master keeps the prefill and decode
  servers that registered and sends each request to a random prefill and a random decode one, comparing nothing
  else of theirs: the servers that register with one pd_master exchange KV.
"""

from __future__ import annotations

from .cmdline import Command
from .model import Setting, Worker

SOURCE = "ModelTC/lightllm@fc72ffab9a3455cfb571f22d45ab777cc29de0de"
RUN_MODES = ("normal", "prefill", "decode", "pd_master", "config_server")
RUN_MODES_SOURCE = f"{SOURCE} lightllm/server/api_cli.py:7-16"
_ROLE_OF_MODE = {"normal": "aggregated", "prefill": "prefill", "decode": "decode", "pd_master": "router", "config_server": "router"}
# setting -> LightLLM's flag for it (its flags are snake_case; the command parser turns `_` into `-`)
_SETTINGS = {"model": "model-dir", "dtype": "data-type"}
_DEFAULT_PD_MASTER = ("0.0.0.0", "1212")  # api_cli.py:27-38
# A prefill or decode server's pd_master loop asserts its host is none of these before it registers (`--host`
# defaults to 127.0.0.1, api_cli.py:17); 0.0.0.0 registers the machine's own IP. The loop runs as a task the HTTP
# server's manager starts and never awaits (lightllm/server/httpserver/manager.py:641-644), so the server keeps running.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
HOST_SOURCE = f"{SOURCE} lightllm/server/httpserver/pd_loop.py:28-33, lightllm/server/api_cli.py:17"


def apply(w: Worker, cmd: Command) -> None:
    """LightLLM's own spellings of the settings other engines spell otherwise (`--model_dir` for the model)."""
    for key, flag in (*_SETTINGS.items(), ("run_mode", "run-mode")):
        if flag in w.flags and key not in w.settings:
            # the value's own place (w.flags holds where the flag is written)
            w.settings[key] = Setting(w.flags[flag].value, cmd.flags[flag].span, f"--{flag.replace('-', '_')}")


def infer_role(w: Worker) -> None:
    """The role `--run_mode` gives (normal when unset); a pd_master or config server serves no model (engine None)."""
    s = w.settings.get("run_mode")
    if s is None and "opaque_args" in w.settings:
        w.set_role("unknown", "no --run_mode written, and arguments set at run time may hold one", "none")
        return
    if s is None:
        w.set_role("aggregated", "--run_mode unset (normal, LightLLM's default)", "default")
        return
    if not s.known:
        w.set_role("unknown", f"--run_mode {s.value.reason}", "none")
        return
    mode = str(s.value)
    role = _ROLE_OF_MODE.get(mode)
    if role is None:
        w.set_role("unknown", f"--run_mode {mode} is none of LightLLM's run modes", "none")
        return
    if role == "router":
        w.engine = None
    w.set_role(role, f"--run_mode {mode}", "flag" if role != "router" else "program")


def registers_with(w: Worker) -> tuple[str, bool] | None:
    """Where a LightLLM prefill or decode server registers, as written (`host:port`), and whether it is written in full
    with no part set at run time; None for other workers. With a config server, it is that server's address (the
    pd_masters it lists), else the one pd_master's (defaults 0.0.0.0:1212)."""
    if w.program != "lightllm" or w.role not in ("prefill", "decode"):
        return None
    cs_host, cs_port = w.flags.get("config-server-host"), w.flags.get("config-server-port")
    if cs_host is not None and cs_port is not None:
        how, parts = "config server", ((cs_host, ""), (cs_port, ""))
    else:
        how, parts = "pd_master", ((w.flags.get("pd-master-ip"), _DEFAULT_PD_MASTER[0]), (w.flags.get("pd-master-port"), _DEFAULT_PD_MASTER[1]))
    text = ":".join(_written(s, default) for s, default in parts)
    return f"{how} {text}", all(s is None or s.known for s, _ in parts)


def _written(s: Setting | None, default: str) -> str:
    """A flag's value as the file writes it (run-time parts as written), or LightLLM's default when unset."""
    if s is None:
        return default
    if s.known:
        return str(s.value)
    return s.value.written if s.value.written is not None else s.value.reason
