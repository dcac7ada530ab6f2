"""Scenario parameters: TOML defaults, CHATLOAD_SCENARIO_PARAMS overrides, server flags, plans.

Pure: no Locust, no sockets. Every bundled scenario must load, preview (`chatload plan
NAME`) and fit this machine with its defaults.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness.commands import plan as plan_cmd
from harness.population import ParamError
from harness.population.planning import preview
from harness.scenario_config import HarnessOptions, load
from tests.support import ROOT

POPULATION_SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.py")
                              if not p.stem.startswith("_") and p.stem != "smoke")
ALL_SCENARIOS = ["smoke", *POPULATION_SCENARIOS]


def test_the_issue_scenarios_exist() -> None:
    assert set(ALL_SCENARIOS) >= {"smoke", "steady", "diurnal", "flash_crowd", "skip_storm", "interests",
                                  "video", "abuse", "soak"}


@pytest.mark.parametrize("name", ALL_SCENARIOS)
def test_chatload_plan_works_for_every_scenario(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    plan_cmd.add_arguments(parser)
    assert plan_cmd.run(parser.parse_args([name])) == 0
    out = capsys.readouterr().out
    assert f"chatload plan: {name}" in out and "peak:" in out and "this machine" in out


@pytest.mark.parametrize("name", POPULATION_SCENARIOS)
def test_default_window_fits_this_machines_load_generator(name: str) -> None:
    cfg = load(name, overrides={})
    pv = preview(cfg.model(), start_hour=cfg.start_hour, hours=cfg.hours or 1.0, time_scale=cfg.time_scale)
    assert pv.workers_for_cpu == 1, (name, pv.loadgen_cpu)
    assert cfg.duration_s() is not None and 60 <= cfg.duration_s() <= 3600  # long for soak, but bounded


def test_toml_defaults_then_overrides_in_every_spelling() -> None:
    cfg = load("abuse", overrides={})
    assert cfg.population.abuse_share == 0.2 and cfg.population.flood_rate == 60.0
    assert cfg.harness.forwarded_for is True and cfg.time_scale == 10
    cfg = load("abuse", overrides={"abuse_share": 0.3, "population.flood_rate": 80, "time_scale": 5,
                                   "harness": {"arrival_max_wait_s": 0}, "server.report_threshold": 2,
                                   "population": {"class_shares": {"skipper": 0.7, "talker": 0.1}}})
    assert cfg.population.abuse_share == 0.3 and cfg.population.flood_rate == 80.0
    assert cfg.population.class_shares["skipper"] == 0.7 and cfg.population.class_shares["keeper"] == 0.1
    assert cfg.time_scale == 5 and cfg.harness.arrival_max_wait_s == 0
    assert cfg.server == {"report-threshold": 2}


@pytest.mark.parametrize("bad, word", [
    ({"abuse_shar": 0.2}, "abuse_shar"),
    ({"harness.nope": 1}, "nope"),
    ({"abuse_share": 2.0}, "abuse_share"),
    ({"time_scale": 0}, "time_scale"),
    ({"forwarded_for": "yes"}, "forwarded_for"),
    ({"run": {"hour": 1}}, "hour"),
])
def test_bad_overrides_name_the_key(bad: dict, word: str) -> None:
    with pytest.raises(ParamError, match=word):
        load("steady", overrides=bad)


def test_server_flags_scale_with_k_and_follow_overrides() -> None:
    cfg = load("steady", overrides={"time_scale": 10})
    args = cfg.server_args()
    assert args[args.index("--interest-fallback") + 1] == "0.5"  # 5 s / K
    assert args[args.index("--rate-limit") + 1] == "200.0" and args[args.index("--rate-burst") + 1] == "400"
    assert "--trust-forwarded-for" not in args
    cfg = load("abuse", overrides={"time_scale": 1, "server": {"interest-fallback": 2, "report-threshold": 2}})
    args = cfg.server_args()
    assert "--rate-limit" not in args and "--trust-forwarded-for" in args
    assert args[args.index("--interest-fallback") + 1] == "2" and args[args.index("--report-threshold") + 1] == "2"


def test_window_follows_the_run_duration() -> None:
    cfg = load("diurnal", overrides={})
    assert cfg.window_hours(600.0) == pytest.approx(24.0)  # 600 s at K = 144 is the whole day
    assert cfg.window_hours(60.0) == pytest.approx(2.4)
    assert cfg.window_hours(6000.0) == pytest.approx(24.0)  # never past the configured window


def test_harness_options_validate() -> None:
    with pytest.raises(ParamError):
        HarnessOptions(sdp_bytes=(100, 5000)).validate()


def test_every_population_scenario_file_is_a_plain_locustfile() -> None:
    for name in POPULATION_SCENARIOS:
        text = (ROOT / "scenarios" / f"{name}.py").read_text()
        assert "import locust_plugin" in text and f'configure("{name}")' in text and "RUN_DEFAULTS" in text
        assert Path(ROOT / "scenarios" / f"{name}.toml").is_file()
