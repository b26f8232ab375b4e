"""Start one vLLM OpenAI server as a disagg worker: `python -m disagg.runtime.vllm_launch <vLLM arguments>`.

Before vLLM starts, it asks Linux for AMX tile permission: in bf16 on AMX-capable CPUs, a decode engine whose first
forward pass follows a remote prefill otherwise dies with SIGILL in the CPU attention kernel (oneDNN asks on the
first large bf16 matmul, which a decode-only engine never runs). It also dies with the supervisor.
"""

from __future__ import annotations

import ctypes
import runpy
import sys

ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18
SYS_ARCH_PRCTL = 158  # x86-64


def request_amx_permission() -> bool:
    """True when the kernel granted AMX tile data (a harmless no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False


if __name__ == "__main__":  # vLLM spawns engine processes: everything must sit under the main guard
    from .process import set_parent_death_signal

    set_parent_death_signal()
    request_amx_permission()
    sys.argv = ["vllm.entrypoints.openai.api_server", *sys.argv[1:]]
    runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__", alter_sys=True)
