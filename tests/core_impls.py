"""Both forms of the pairing core: the imported one (compiled by mypyc when the install
built it) and the plain-Python source loaded directly, so tests cover each."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import reference_server.core as imported

SOURCE = Path(__file__).resolve().parent.parent / "reference_server" / "core.py"


def _load_source() -> ModuleType:
    name = "reference_server._core_source"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


source = _load_source()
COMPILED = not str(getattr(imported, "__file__", "")).endswith(".py")
IMPLS = {"imported": imported, "source": source}
