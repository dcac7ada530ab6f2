"""Builds the pairing core with mypyc when it can (the same source, compiled), and the simulator's C kernel.

`reference_server/core.py` stays plain Python and is tested as such (tests/core_impls.py);
mypyc compiles it into an extension that imports in its place and runs about 1.6x
faster. CHATLOAD_PURE_PYTHON=1 skips it; if generating or compiling the C fails (no C
compiler on the machine, say), the pure-Python core is used.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python: a failed compile removes whatever it built."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - CompileError, DistutilsExecError, a missing compiler...
            print(f"chatload: not compiling the pairing core ({exc!r}); using pure Python", file=sys.stderr)
            for ext in self.extensions:
                for built in {Path(self.get_ext_fullpath(ext.name)), Path(self.get_ext_filename(ext.name))}:
                    built.unlink(missing_ok=True)
            self.extensions = []

    def get_outputs(self) -> list[str]:
        return [path for path in super().get_outputs() if os.path.exists(path)]


ext_modules = []
if os.environ.get("CHATLOAD_PURE_PYTHON") != "1":
    try:
        from mypyc.build import mypycify

        ext_modules = mypycify(["reference_server/core.py"], opt_level="3")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure falls back to pure Python
        print(f"chatload: not compiling the pairing core ({exc!r}); using pure Python", file=sys.stderr)
    # The simulator's C kernel (harness/simulate/kernel.py): plain C API, no mypyc needed.
    ext_modules.append(Extension("harness.simulate._kernel", ["harness/simulate/_kernel.c"],
                                 extra_compile_args=["-O3"]))

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
