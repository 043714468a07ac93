"""Ask the NVIDIA driver (libcuda, through ctypes) which CUDA devices this machine has; print JSON.

Run as a separate process by ``device.probe_gpus`` and imports nothing of edgecc, so that a broken
driver can take down only this process, never the caller. Nothing here touches TensorRT: its runtime
segfaults when it deserialises an engine on a machine without a CUDA device.
"""

import ctypes
import json
import sys

# CUdevice_attribute values from the CUDA driver API (cuda.h).
_ATTR_INTEGRATED = 18
_ATTR_CC_MAJOR = 75
_ATTR_CC_MINOR = 76
_LIBS = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
_NAMES = {100: "CUDA_ERROR_NO_DEVICE", 35: "CUDA_ERROR_INSUFFICIENT_DRIVER", 999: "CUDA_ERROR_UNKNOWN",
          3: "CUDA_ERROR_NOT_INITIALIZED", 101: "CUDA_ERROR_INVALID_DEVICE", 304: "CUDA_ERROR_OPERATING_SYSTEM"}


def _load():
    for name in _LIBS:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def probe() -> dict:
    lib = _load()
    if lib is None:
        return {"driver": False, "error": "the NVIDIA driver library (libcuda.so.1) is not installed", "devices": []}
    rc = lib.cuInit(0)
    if rc != 0:
        return {"driver": True, "error": f"cuInit failed: {_NAMES.get(rc, 'CUDA error')} ({rc})", "devices": []}
    version = ctypes.c_int(0)
    lib.cuDriverGetVersion(ctypes.byref(version))
    count = ctypes.c_int(0)
    rc = lib.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0:
        return {"driver": True, "error": f"cuDeviceGetCount failed: {_NAMES.get(rc, 'CUDA error')} ({rc})", "devices": []}
    devices = []
    for index in range(count.value):
        dev = ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(dev), index) != 0:
            continue
        name = ctypes.create_string_buffer(256)
        lib.cuDeviceGetName(name, 256, dev)
        attrs = {}
        for key, attr in (("major", _ATTR_CC_MAJOR), ("minor", _ATTR_CC_MINOR), ("integrated", _ATTR_INTEGRATED)):
            value = ctypes.c_int(0)
            lib.cuDeviceGetAttribute(ctypes.byref(value), attr, dev)
            attrs[key] = value.value
        memory = ctypes.c_size_t(0)
        lib.cuDeviceTotalMem_v2(ctypes.byref(memory), dev)
        devices.append({
            "index": index,
            "name": name.value.decode(errors="replace"),
            "compute_capability": f"{attrs['major']}.{attrs['minor']}",
            "integrated": bool(attrs["integrated"]),
            "total_memory_bytes": memory.value,
        })
    major, minor = divmod(version.value, 1000)
    return {"driver": True, "error": None, "driver_version": f"{major}.{minor // 10}", "devices": devices}


if __name__ == "__main__":
    json.dump(probe(), sys.stdout)
