"""Dashboard JSON and provisioning files: structure only (queries run in tests/test_prometheus_run.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, time_unit

DASHBOARDS = ROOT / "dashboards"
FILES = ("chatload-run-overview.json", "chatload-reference-server.json")
DS_VAR = "${datasource}"


def _load(name: str) -> dict[str, Any]:
    return json.loads((DASHBOARDS / name).read_text())


def test_committed_json_matches_the_generator() -> None:
    proc = subprocess.run([sys.executable, str(DASHBOARDS / "build.py"), "--check"], capture_output=True, text=True,
                          timeout=30 * time_unit())
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", FILES)
def test_panel_ids_unique_and_datasource_variable_everywhere(name: str) -> None:
    d = _load(name)
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    assert d["uid"] and d["title"].startswith("chatload")
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": DS_VAR}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            assert t["datasource"]["uid"] == DS_VAR and t["expr"].strip()
            assert 'run=~"$run"' in t["expr"], f"{p['title']}: query ignores the run variable"


@pytest.mark.parametrize("name", FILES)
def test_variables(name: str) -> None:
    d = _load(name)
    by_name = {v["name"]: v for v in d["templating"]["list"]}
    assert by_name["datasource"]["type"] == "datasource" and by_name["datasource"]["query"] == "prometheus"
    run = by_name["run"]
    assert run["type"] == "query" and run["datasource"]["uid"] == DS_VAR
    assert run["definition"].startswith("label_values(") and run["includeAll"] and run["allValue"] == ".*"


@pytest.mark.parametrize("name", FILES)
def test_grid_layout_is_valid_without_overlaps(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    for p in _load(name)["panels"]:
        g = p["gridPos"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] >= 0 and g["y"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells


def test_overview_covers_the_issue_panels() -> None:
    titles = " | ".join(p["title"].lower() for p in _load(FILES[0])["panels"])
    for words in ("pair latency percentiles", "heatmap", "relay latency", "pairs and messages per second",
                  "online, waiting, in chat", "jain", "fifo inversions", "p99 wait by cohort", "violations",
                  "errors", "arrivals", "lateness"):
        assert words in titles, words
    server = " | ".join(p["title"].lower() for p in _load(FILES[1])["panels"])
    for words in ("event-loop lag", "queue depth per pool", "relayed messages", "errors per second, by code"):
        assert words in server, words


def test_provisioning_files_are_well_formed() -> None:
    ds = yaml.safe_load((DASHBOARDS / "provisioning" / "datasources" / "chatload.yaml").read_text())
    assert ds["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "chatload-prometheus" and source["url"].startswith("http")
    prov = yaml.safe_load((DASHBOARDS / "provisioning" / "dashboards" / "chatload.yaml").read_text())
    assert prov["apiVersion"] == 1
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] and provider["folder"] == "chatload"
