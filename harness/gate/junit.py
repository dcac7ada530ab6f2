"""JUnit XML for the gate: one <testsuite>, one <testcase> per check.

Why: CI systems (Jenkins, GitLab, GitHub test reporters) read this shape and show each
failed check by name with its message. The shape follows the common junit-10.xsd
layout: <testsuites> holding one <testsuite name tests failures errors skipped time
timestamp hostname>, its <properties>, then <testcase name classname time> with an
optional <failure message type> or <skipped message>, and <system-out> for the detail.
"""
from __future__ import annotations

import datetime as _dt
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.gate.evaluate import CheckResult
from harness.gate.table import bound_text, fmt_number

SUITE = "chatload gate"
CLASSNAME = "chatload.gate"
# Characters XML 1.0 cannot carry at all.
_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("?", text)


def build(
    outcomes: Sequence[CheckResult],
    properties: Mapping[str, str] | None = None,
    timestamp: _dt.datetime | None = None,
) -> ET.Element:
    """The <testsuites> element for a list of check outcomes."""
    failures = sum(1 for r in outcomes if not r.passed)
    skipped = sum(1 for r in outcomes if r.skipped)
    counts = {"tests": str(len(outcomes)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ET.Element("testsuites", {"name": SUITE, **counts, "time": "0"})
    ts = (timestamp or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S")
    suite = ET.SubElement(root, "testsuite", {
        "name": SUITE, **counts, "time": "0", "timestamp": ts, "hostname": _clean(socket.gethostname() or "localhost"),
    })
    if properties:
        props = ET.SubElement(suite, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", {"name": _clean(str(key)), "value": _clean(str(value))})
    for r in outcomes:
        case = ET.SubElement(suite, "testcase", {"name": _clean(r.name), "classname": CLASSNAME, "time": "0"})
        summary = f"{r.metric}: value {fmt_number(r.value)}, bound {bound_text(r)}"
        if r.skipped:
            ET.SubElement(case, "skipped", {"message": _clean(r.detail or "skipped")})
        elif not r.passed:
            failure = ET.SubElement(case, "failure", {"message": _clean(r.detail or "check failed"), "type": "GateCheckFailed"})
            failure.text = _clean(f"{summary}\n{r.detail}")
        out = ET.SubElement(case, "system-out")
        out.text = _clean(f"{summary}; {'within noise: ' if r.within_noise else ''}{r.detail}".rstrip("; "))
    return root


def to_string(outcomes: Sequence[CheckResult], properties: Mapping[str, str] | None = None) -> str:
    root = build(outcomes, properties)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(path: str | Path, outcomes: Sequence[CheckResult], properties: Mapping[str, str] | None = None) -> None:
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(to_string(outcomes, properties), encoding="utf-8")
