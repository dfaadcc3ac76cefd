"""``bpttbench peers --device cuda``: which peers may run on a GPU, and what a row records.

bpttbench's kernels run on the CPU only; a peer runs on the GPU when its
library sees one: PyTorch when ``torch.cuda.is_available()``, JAX when
``jax.devices("gpu")`` lists one. A peer that sees none is skipped with a
note; when no peer sees one, the command prints :func:`no_gpu_line` and exits
with ``NO_GPU_EXIT`` (1) before it opens the store, so nothing is written: a
script that asked for GPU rows learns that it got none.

Timing on the GPU is the peer modules' business (``torch_impl`` synchronizes
after each call, ``jax_impl`` blocks until the result is ready); this module
only chooses the peers and describes the device and the versions for a row.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping

NO_GPU_EXIT = 1
_CHECKS = {"pytorch": "torch.cuda.is_available() is False", "jax": "JAX sees no GPU"}


def before_import(device: str) -> None:
    """Environment the GPU libraries read when they are first imported.

    JAX takes 75% of the GPU's memory on its first use unless told otherwise;
    PyTorch shares the GPU in the same process, so JAX allocates as it goes.
    """
    if device != "cpu":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def select(modules: Mapping[str, object], device: str) -> tuple[dict[str, object], dict[str, str]]:
    """The peers that can run on ``device``, and why each other one cannot."""
    if device == "cpu":
        return dict(modules), {}
    kept, why = {}, {}
    for tool, mod in modules.items():
        check = getattr(mod, "gpu_available", None)
        if check is not None and check():
            kept[tool] = mod
        else:
            why[tool] = _CHECKS.get(tool, "it has no GPU support")
    return kept, why


def skip_notes(why: Mapping[str, str]) -> list[str]:
    """One note per peer that cannot run on the GPU while another can."""
    return [
        f"note: {tool} cannot run on the GPU ({reason}), skipping it"
        for tool, reason in why.items()
    ]


def no_gpu_line(why: Mapping[str, str]) -> str:
    """The one line printed when ``--device cuda`` finds no GPU."""
    why = "; ".join(why.values())
    return (
        "bpttbench peers: --device cuda needs a GPU and none is visible"
        + (f" ({why})" if why else "")
        + "; nothing was measured and the store was not written"
    )


def device_name(module, device: str) -> str:
    """The row's device: ``"cpu"`` or ``"cuda:0 NVIDIA H200"``."""
    named = getattr(module, "device_name", None)
    return named(device) if named is not None else "cpu"


def device_names(modules: Mapping[str, object], device: str) -> str:
    """Where the peers run, for the header line: ``"cpu"`` or each tool's GPU."""
    names = {tool: device_name(mod, device) for tool, mod in modules.items()}
    if len(set(names.values())) == 1:
        return next(iter(names.values()), "cpu")
    return ", ".join(f"{tool} {name}" for tool, name in names.items())


def versions_json(module, meta: Mapping) -> str:
    """The row's ``versions``: the tool's (and its CUDA's), Numba's, NumPy's and Python's."""
    got = getattr(module, "versions", None)
    out = dict(got()) if got is not None else {"tool": module.version()}
    for key in ("numba", "numpy", "scipy", "python"):
        if meta.get(key):
            out[key] = str(meta[key])
    out.setdefault("python", platform.python_version())
    return json.dumps(out, sort_keys=True)


def error_reason(exc: BaseException) -> str:
    """A failed cell's reason: out of memory (CPU or GPU), or the error's first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if type(exc) is MemoryError:
        return "out of memory"
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return f"out of memory ({type(exc).__name__})"
    return f"{type(exc).__name__}: {text}"[:300]
