"""Builds the pairing core with mypyc when it can: the same source, compiled.

`reference_server/core.py` stays plain Python and is tested as such (tests/core_impls.py);
mypyc compiles it into an extension that imports in its place and runs about 1.6x
faster. CHATLOAD_PURE_PYTHON=1 skips it; if compiling fails, the pure-Python core is used.
"""
from __future__ import annotations

import os
import sys

from setuptools import setup

ext_modules = []
if os.environ.get("CHATLOAD_PURE_PYTHON") != "1":
    try:
        from mypyc.build import mypycify

        ext_modules = mypycify(["reference_server/core.py"], opt_level="3")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure falls back to pure Python
        print(f"chatload: not compiling the pairing core ({exc!r}); using pure Python", file=sys.stderr)

setup(ext_modules=ext_modules)
