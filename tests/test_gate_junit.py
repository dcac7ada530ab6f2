"""JUnit XML from the gate: validates against the common JUnit schema, and carries one
testcase per check with the failure message CI systems show."""
from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET

import pytest

from harness.gate import junit
from harness.gate.evaluate import CheckResult, evaluate
from harness.gate.thresholds import parse_thresholds
from tests.gate_synth import synthetic_run
from tests.support import ROOT

XSD = ROOT / "tests" / "data" / "junit.xsd"

GATES = """
[thresholds]
"correctness.violations_total" = "== 0"
"pair_latency_ms.p99" = ["< 1500", "<= 1.2 * baseline"]
[[check]]
metric = "fairness.jain_index"
op = ">="
value = 0.9
optional = true
"""


def outcomes() -> list[CheckResult]:
    run = synthetic_run(2, violations=2, shift_ms=200.0)
    del run["fairness"]
    return evaluate(run, parse_thresholds(tomllib.loads(GATES)), synthetic_run(1))


def test_structure_one_suite_one_case_per_check(tmp_path):
    out = tmp_path / "sub" / "junit.xml"
    res = outcomes()
    junit.write(out, res, {"run.scenario": "smoke"})
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("4", "2", "0", "1")
    assert root.get("tests") == "4" and root.get("failures") == "2"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [r.name for r in res]
    by_name = {c.get("name"): c for c in cases}
    failure = by_name["correctness.violations_total == 0"].find("failure")
    assert failure is not None and failure.get("message") == "2 is not == 0"
    assert by_name["pair_latency_ms.p99 <= 1.2 * baseline"].find("failure") is not None
    assert by_name["pair_latency_ms.p99 < 1500"].find("failure") is None
    assert by_name["fairness.jain_index >= 0.9"].find("skipped") is not None
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props == {"run.scenario": "smoke"}
    # Children in schema order: properties first, then testcases.
    assert [child.tag for child in suite][0] == "properties"


def test_validates_against_the_junit_schema(tmp_path):
    xmlschema = pytest.importorskip("xmlschema", reason="pip install xmlschema to validate JUnit XML")
    schema = xmlschema.XMLSchema(str(XSD))
    out = tmp_path / "junit.xml"
    junit.write(out, outcomes(), {"thresholds": "gates.toml", "baseline": "base.json"})
    schema.validate(str(out))
    # Awkward text (markup characters, control characters, non-ASCII) still yields valid XML.
    odd = [CheckResult('a<b>&"c" \x01 é', 1.0, 2.0, False, "x < y & \x07 bell", metric="m", op="<")]
    junit.write(out, odd)
    schema.validate(str(out))
    assert ET.parse(out).getroot().find("testsuite/testcase").get("name") == 'a<b>&"c" ? é'
    # The schema is not vacuous: it rejects a testcase without a name and a bad count.
    bad = out.read_text().replace('tests="1"', 'tests="-1"', 1)
    assert not schema.is_valid(bad)
    bad = out.read_text().replace("<testcase name=", "<testcase nom=", 1)
    assert not schema.is_valid(bad)


def test_empty_outcomes_still_valid(tmp_path):
    xmlschema = pytest.importorskip("xmlschema")
    out = tmp_path / "junit.xml"
    junit.write(out, [])
    xmlschema.XMLSchema(str(XSD)).validate(str(out))
