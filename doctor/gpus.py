"""How many NVIDIA GPUs this machine has, through NVML (`nvidia-ml-py`), or None when that cannot be known."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def nvml_gpu_count() -> int | None:
    """GPUs NVML reports, or None without the `nvidia-ml-py` package or an NVIDIA driver (a normal case)."""
    try:
        import pynvml  # the nvidia-ml-py distribution
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded: no NVIDIA GPU here
        return None
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
