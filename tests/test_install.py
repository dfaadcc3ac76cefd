"""An installed copy writes nothing into its own package folder when its kernels run.

Numba's default cache lives in ``__pycache__`` beside the sources; for a
``pip install .`` that is ``site-packages/bpttbench``, and ``pip uninstall``
does not know those files, so the folder they keep alive shadows a later
editable install as an empty namespace package (found after the README's two
commands). The kernels cache in the user's cache folder instead
(``kernels/_jit.py``). This test installs the checkout into a scratch folder,
runs a kernel from outside the checkout, and checks where the cache went.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    numba.config.DISABLE_JIT, reason="no compiled kernels, so no cache, under NUMBA_DISABLE_JIT"
)

RUN = """
import numpy as np, bpttbench
p = bpttbench.init_rnn(2, 3, 1)
loss, g = bpttbench.bptt(p, np.ones((4, 2)), np.ones((4, 1)))
print(bpttbench.__file__)
"""


def test_an_installed_copy_caches_outside_its_package(tmp_path):
    site, home, work = tmp_path / "site", tmp_path / "home", tmp_path / "elsewhere"
    work.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, ROOT],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(site), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    out = subprocess.run(
        [sys.executable, "-c", RUN], cwd=work, env=env, check=True, capture_output=True, text=True
    ).stdout
    assert Path(out.strip()).is_relative_to(site), f"imported {out.strip()}, not the installed copy"
    package = site / "bpttbench"
    in_package = [p for p in package.rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert not in_package, f"Numba cache files inside the installed package: {in_package[:3]}"
    cached = [p for p in (home / ".cache").rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert cached, "the kernels compiled but left no cache in the user's cache folder"
    top_level = {
        p.name for p in site.iterdir() if p.name != "bin" and not p.name.endswith(".dist-info")
    }
    assert top_level == {"bpttbench"}, f"the install added other top-level names: {top_level}"
