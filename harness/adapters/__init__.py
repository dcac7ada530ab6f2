"""Adapters: drive any chat backend with the same users, metrics and oracle.

Pick one with CHATLOAD_PROTOCOL (reference, jsonws, socketio, omegle) and, for backends
with their own event names, a TOML mapping file in CHATLOAD_MAPPING (`chatload run
--protocol P --mapping FILE` sets both). See docs/adapters.md.
"""
from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.adapters.base import CAPABILITY_DOCS, Adapter, Capabilities, ConnectionLost, Pacer, Sink

__all__ = [
    "Adapter", "AdapterSpec", "Capabilities", "ConnectionLost", "PROTOCOLS", "Pacer", "Sink", "from_env", "load",
    "CAPABILITY_DOCS",
]

#: protocol name -> "module:Class"
PROTOCOLS = {
    "reference": "harness.adapters.reference:ReferenceAdapter",
    "jsonws": "harness.adapters.jsonws:JsonWsAdapter",
    "socketio": "harness.adapters.socketio:SocketIOAdapter",
    "omegle": "harness.adapters.omegle:OmegleAdapter",
}


class MappingError(ValueError):
    """The mapping file is missing, unreadable or does not fit the protocol (a usage error)."""


@dataclass
class AdapterSpec:
    """One process's choice of adapter, validated once; `make()` builds one per user session."""

    protocol: str
    capabilities: Capabilities
    config: Any = None
    mapping_path: str | None = None
    factory: Callable[..., Adapter] | None = field(default=None, repr=False)

    def make(self) -> Adapter:
        assert self.factory is not None
        return self.factory(self.capabilities, self.config)


def _adapter_class(protocol: str) -> type:
    try:
        module_name, _, cls_name = PROTOCOLS[protocol].partition(":")
    except KeyError:
        raise MappingError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name == module_name or not exc.name or exc.name.startswith("harness"):
            raise
        # An optional client library (socketio: python-socketio[client]) is not installed.
        raise MappingError(f"protocol {protocol!r} needs the Python package {exc.name!r}, which is not"
                           f" installed (socketio: pip install 'python-socketio[client]')") from None
    return getattr(module, cls_name)


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise MappingError(f"cannot read mapping {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"mapping {path} is not valid TOML: {exc}") from None


def load(protocol: str | None = None, mapping_path: str | os.PathLike[str] | None = None) -> AdapterSpec:
    """Validate a protocol + mapping choice. The protocol defaults to the mapping's
    `protocol` key, else "reference"."""
    mapping: dict[str, Any] = read_mapping(mapping_path) if mapping_path else {}
    named = mapping.get("protocol")
    protocol = protocol or named or "reference"
    if named and named != protocol:
        raise MappingError(f"mapping {mapping_path} is for protocol {named!r}, not {protocol!r}")
    cls = _adapter_class(protocol)
    try:
        caps, config = cls.configure(mapping)
    except MappingError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise MappingError(f"mapping {mapping_path or '(none)'} for {protocol}: {exc}") from None
    return AdapterSpec(protocol, caps, config, str(mapping_path) if mapping_path else None, cls)


_FROM_ENV: AdapterSpec | None = None


def from_env() -> AdapterSpec:
    """The spec named by CHATLOAD_PROTOCOL / CHATLOAD_MAPPING, loaded once per process."""
    global _FROM_ENV
    if _FROM_ENV is None:
        _FROM_ENV = load(os.environ.get("CHATLOAD_PROTOCOL") or None, os.environ.get("CHATLOAD_MAPPING") or None)
    return _FROM_ENV


def mapping_dir(spec: AdapterSpec) -> Path | None:
    return Path(spec.mapping_path).parent if spec.mapping_path else None

#: Worker counter prefix naming a capability the backend lacks (one count per session);
#: harness/results.py turns these into correctness.unchecked.
LACKS_PREFIX = "lacks:"
