"""The versions the check ran with (python, torch, torchvision, detectron2, fvcore, CUDA, cuDNN, the device),
read from whatever is installed: the check works with the machine's own torch, whatever its version."""
from __future__ import annotations

import importlib
import os
import platform
import sys

import torch

from mocobench.benchmarks.perf.gpu_check.harness import Outcome, failed, passed

LIBRARIES = ("torch", "torchvision", "detectron2", "fvcore", "iopath", "numpy", "pycocotools", "PIL")
# what the suite cannot run without (detectron2 and fvcore: the transfer benchmarks)
REQUIRED = ("torch", "torchvision", "detectron2", "fvcore")


def versions() -> dict:
    out = {"python": platform.python_version(), "executable": sys.executable}
    for name in LIBRARIES:
        try:
            module = importlib.import_module(name)
            out[name] = getattr(module, "__version__", "unknown")
            out[f"{name}_from"] = os.path.dirname(getattr(module, "__file__", "") or "")
        except Exception as e:  # noqa: BLE001 - an import that fails for any reason is "not usable"
            out[name] = None
            out[f"{name}_error"] = f"{type(e).__name__}: {e}"[:200]
    import mocobench

    out["mocobench_from"] = os.path.dirname(os.path.abspath(mocobench.__file__))
    out["mocobench_path"] = list(mocobench.__path__)  # + the repository root when run from a source tree
    out["cuda_available"] = torch.cuda.is_available()
    out["cuda"] = torch.version.cuda
    out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if torch.cuda.is_available():
        i = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(i)
        out.update(device_name=props.name, device_count=torch.cuda.device_count(),
                   device_memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}",
                   bf16_supported=torch.cuda.is_bf16_supported())
    else:
        out.update(device_name=platform.processor() or platform.machine(), device_count=0)
    out["cpu_count"] = os.cpu_count()
    out["torch_threads"] = torch.get_num_threads()
    return out


def check(ctx) -> Outcome:
    v = versions()
    missing = [n for n in REQUIRED if v.get(n) is None]
    line = (f"python {v['python']}, torch {v['torch']}, torchvision {v['torchvision']}, detectron2 {v['detectron2']}, "
            f"fvcore {v['fvcore']}, CUDA {v['cuda']}, {v['device_name']}")
    if ctx.cuda and not v["cuda_available"]:
        return failed(f"--device cuda but torch sees no CUDA device; {line}", **v)
    if missing:
        return failed(f"not importable: {', '.join(missing)} ({'; '.join(v.get(n + '_error', '') for n in missing)}); "
                      f"see docs/gpu-check.md", **v)
    return passed(line, **v)
