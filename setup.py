"""Builds the pairing core with mypyc when it can (the same source, compiled), and two small C extensions.

`reference_server/core.py` stays plain Python and is tested as such (tests/core_impls.py);
mypyc compiles it into an extension that imports in its place and runs about 1.6x
faster. CHATLOAD_PURE_PYTHON=1 skips it; if generating or compiling the C fails (no C
compiler on the machine, say), the pure-Python core is used.

The C extensions (the simulator's kernel, the fairness analysis's search) each have a
pure-Python fallback too. Each extension that fails to compile is dropped on its own: a
broken kernel does not cost the compiled core, and the other way round.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python, one extension at a time.

    A failed extension removes what it built; the mypyc pair (the shim and its
    `core__mypyc` library) goes as one, since the shim alone would not import.
    """

    def _unlink(self, ext: Extension) -> None:
        for built in {Path(self.get_ext_fullpath(ext.name)), Path(self.get_ext_filename(ext.name))}:
            built.unlink(missing_ok=True)

    def build_extension(self, ext: Extension) -> None:
        if ext.name in self._failed:                # the other half of a failed mypyc pair
            return
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - CompileError, DistutilsExecError, a missing compiler...
            print(f"chatload: not compiling {ext.name} ({exc!r}); its pure-Python fallback runs", file=sys.stderr)
            group = MYPYC if ext.name in MYPYC else {ext.name}
            self._failed |= group
            for other in self.extensions:
                if other.name in group:
                    self._unlink(other)

    def run(self) -> None:
        self._failed: set[str] = set()
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler at all, say
            print(f"chatload: not compiling the extensions ({exc!r}); using pure Python", file=sys.stderr)
            for ext in self.extensions:
                self._unlink(ext)
            self.extensions = []

    def copy_extensions_to_source(self) -> None:  # --inplace and editable installs: only what was built
        kept = self.extensions
        self.extensions = [ext for ext in kept if ext.name not in self._failed]
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = kept

    def get_outputs(self) -> list[str]:
        return [path for path in super().get_outputs() if os.path.exists(path)]


ext_modules = []
MYPYC: set[str] = set()
if os.environ.get("CHATLOAD_PURE_PYTHON") != "1":
    try:
        from mypyc.build import mypycify

        ext_modules = mypycify(["reference_server/core.py"], opt_level="3")
        MYPYC = {ext.name for ext in ext_modules}
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure falls back to pure Python
        print(f"chatload: not compiling the pairing core ({exc!r}); using pure Python", file=sys.stderr)
    # The simulator's C kernel (harness/simulate/kernel.py): plain C API, no mypyc needed.
    ext_modules.append(Extension("harness.simulate._kernel", ["harness/simulate/_kernel.c"],
                                 extra_compile_args=["-O3"]))
    # The fairness analysis's galloping search (harness/fairness/search.py).
    ext_modules.append(Extension("harness.fairness._search", ["harness/fairness/_search.c"],
                                 extra_compile_args=["-O3"]))

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
