"""The live doctor's NVML source on a real GPU (run by hand on a machine with an NVIDIA GPU; not in CI).

    python tools/nvml_gpu_check.py [--seconds 6]

The tests drive NvmlSource with a fake NVML module; this checks it against the real driver. It starts two processes
that hold a CUDA context through the driver API (ctypes, no framework needed): "decode-0" keeps the GPU busy with a
spinning kernel (PTX compiled by the driver), "prefill-0" allocates memory and does nothing, as the seed case's idle
prefill worker. Then it reads NvmlSource every 0.5 s with their PIDs and prints what the live doctor would show. It
passes when decode-0 reads busy, prefill-0 reads (near) 0% and both are found by PID; exit 1 otherwise, with why.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing as mp
import os
import sys
import time

# A kernel that spins n times (one thread per lane, every SM busy) and writes its sum, so it cannot be optimised away.
PTX = rb"""
.version 7.0
.target sm_70
.address_size 64
.visible .entry spin(.param .u64 n, .param .u64 out)
{
  .reg .u64 %rd<6>;
  .reg .pred %p;
  ld.param.u64 %rd1, [n];
  ld.param.u64 %rd4, [out];
  mov.u64 %rd2, 0;
  mov.u64 %rd3, 0;
LOOP:
  add.u64 %rd3, %rd3, %rd2;
  add.u64 %rd2, %rd2, 1;
  setp.lt.u64 %p, %rd2, %rd1;
  @%p bra LOOP;
  cvta.to.global.u64 %rd5, %rd4;
  st.global.u64 [%rd5], %rd3;
  ret;
}
"""


def _cuda():
    cuda = ctypes.CDLL("libcuda.so.1")

    def check(code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"{what} failed with CUDA error {code}")

    check(cuda.cuInit(0), "cuInit")
    dev = ctypes.c_int()
    check(cuda.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
    ctx = ctypes.c_void_p()
    check(cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev), "cuCtxCreate")
    return cuda, check


def busy(seconds: float, ready) -> None:
    cuda, check = _cuda()
    module, func, out = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_uint64()
    check(cuda.cuModuleLoadData(ctypes.byref(module), ctypes.c_char_p(PTX)), "cuModuleLoadData")
    check(cuda.cuModuleGetFunction(ctypes.byref(func), module, b"spin"), "cuModuleGetFunction")
    check(cuda.cuMemAlloc_v2(ctypes.byref(out), ctypes.c_size_t(8)), "cuMemAlloc")
    n = ctypes.c_uint64(20_000_000)
    params = (ctypes.c_void_p * 2)(ctypes.cast(ctypes.byref(n), ctypes.c_void_p), ctypes.cast(ctypes.byref(out), ctypes.c_void_p))
    ready.set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        check(cuda.cuLaunchKernel(func, 1024, 1, 1, 256, 1, 1, 0, None, params, None), "cuLaunchKernel")
        check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")


def idle(seconds: float, ready) -> None:
    cuda, check = _cuda()
    mem = ctypes.c_uint64()
    check(cuda.cuMemAlloc_v2(ctypes.byref(mem), ctypes.c_size_t(256 << 20)), "cuMemAlloc")
    ready.set()
    time.sleep(seconds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    from disagg.doctor.live.utilisation import NvmlSource

    ctx = mp.get_context("spawn")
    events = {name: ctx.Event() for name in ("decode-0", "prefill-0")}
    procs = {"decode-0": ctx.Process(target=busy, args=(args.seconds + 2, events["decode-0"])),
             "prefill-0": ctx.Process(target=idle, args=(args.seconds + 2, events["prefill-0"]))}
    for p in procs.values():
        p.start()
    deadline = time.monotonic() + 60
    while not all(ev.is_set() for ev in events.values()):
        dead = [name for name, p in procs.items() if not p.is_alive() and not events[name].is_set()]
        if dead or time.monotonic() > deadline:
            print(f"{', '.join(dead) or 'a worker'} never got a CUDA context (see its error above)")
            return 1
        time.sleep(0.1)
    pids = {name: p.pid for name, p in procs.items()}
    print(f"this process {os.getpid()}, workers {pids}")
    source = NvmlSource()
    readings = []
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        time.sleep(0.5)
        got = source.read(pids)
        row = {k: (v.percent, v.memory_used, v.detail) for k, v in got.items()} if isinstance(got, dict) else {"not_available": got.reason}
        readings.append(row)
        print(json.dumps(row))
    for p in procs.values():
        p.join(30)
    ok = [r for r in readings if "decode-0" in r and "prefill-0" in r]
    if not ok:
        print("FAIL: the workers' PIDs were never among NVML's processes (another PID namespace?)")
        return 1
    busy_peak = max(r["decode-0"][0] for r in ok)
    idle_peak = max(r["prefill-0"][0] for r in ok)
    print(f"decode-0 peak {busy_peak:.0f}%, prefill-0 peak {idle_peak:.0f}% over {len(ok)} readings with both found")
    if busy_peak < 50 or idle_peak > 5:
        print("FAIL: expected the spinning worker busy (>= 50%) and the idle one near 0% (<= 5%)")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
