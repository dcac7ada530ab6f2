"""`chatload plan`: the defaults reproduce the calibration, Little's law, slots and workers, the command."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.cli import main
from harness.population import PopulationModel
from harness.population.planning import Machine, chat_stats, preview


def test_defaults_reproduce_the_calibrated_behaviour():
    s = chat_stats(PopulationModel())
    assert 0.75 <= s.skip_within_5s <= 0.85            # share of chats skipped within 5 s
    assert 10 * 60 <= s.mean_visit_s <= 30 * 60        # visit length 10-30 minutes
    assert 20 <= s.mean_chats_per_visit <= 40          # 20-40 partners a visit
    assert s.waiting_share < 0.1


def test_skip_share_matches_sampled_chats():
    """The planner's expectation agrees with chats sampled from the waiting-pool composition."""
    model = PopulationModel()
    p = model.params
    rng = np.random.default_rng(8)
    plan = model.build(seed=8, hours=1)
    pool = np.repeat(plan.user_class, plan.chats)  # every chat a user makes, as a pool entry
    a, b = rng.choice(pool, 50_000), rng.choice(pool, 50_000)
    d, _ = model.chat_length_s(a, b, rng)
    s = chat_stats(model)
    assert np.mean(d < 5.0) == pytest.approx(s.skip_within_5s, abs=0.01)
    assert d.mean() == pytest.approx(s.mean_chat_s, rel=0.05)
    assert plan.chats.mean() == pytest.approx(s.mean_chats_per_visit, rel=0.02)
    assert p.dau == 3_000_000


def test_littles_law_and_hourly_arrivals():
    model = PopulationModel(dau=2_400_000)
    pv = preview(model, start_hour=22.0, hours=4)
    assert [r.hour_utc for r in pv.rows] == [22, 23, 0, 1]
    for r in pv.rows:
        assert r.arrivals_per_s == pytest.approx(r.arrivals / 3600)
        assert r.online == pytest.approx(r.arrivals_per_s * pv.stats.mean_visit_s)
        assert r.pairs_per_s == pytest.approx(r.arrivals_per_s * pv.stats.mean_chats_per_visit / 2)
    assert pv.total_arrivals == pytest.approx(sum(r.arrivals for r in pv.rows))


def test_slots_and_workers_follow_the_machine():
    machine = Machine(cores=2, sockets_per_process=20_000)
    pv = preview(PopulationModel(), hours=24, time_scale=1, machine=machine)
    assert pv.slots == math.ceil(pv.peak_online * 1.25)
    assert pv.workers_for_sockets == math.ceil(pv.slots / 20_000) >= 2  # 3M daily users need over 20k sockets
    heavy = preview(PopulationModel(), hours=24, time_scale=100, machine=machine)
    assert heavy.workers_for_cpu > pv.workers_for_cpu and not heavy.fits_here
    assert heavy.max_time_scale_here == pytest.approx(pv.max_time_scale_here)
    small = preview(PopulationModel(dau=50_000), hours=1, time_scale=10, machine=machine)
    assert small.fits_here and small.workers == 1


def test_burst_peak_is_counted():
    flat = preview(PopulationModel(dau=100_000, peak_to_trough=1.0), hours=1)
    burst = preview(PopulationModel(dau=100_000, peak_to_trough=1.0, burst_multiplier=10.0, burst_start_s=600),
                    hours=1)
    assert burst.peak_arrivals_per_s == pytest.approx(10 * flat.peak_arrivals_per_s)
    assert burst.slots > 5 * flat.slots


def test_plan_command_prints_the_hour_table(capsys):
    assert main(["plan", "--dau", "500000", "--hours", "3", "--time-scale", "60"]) == 0
    out = capsys.readouterr().out
    assert "arrivals/s" in out and "online" in out and "user slots" in out and "worker process" in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 3


def test_plan_command_reads_a_params_file_and_json(tmp_path, capsys):
    f = tmp_path / "flash.toml"
    f.write_text("time_scale = 10\nhours = 2\n[population]\ndau = 100000\nburst_multiplier = 10\n")
    assert main(["plan", str(f), "--json", "--sample", "--seed", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["time_scale"] == 10 and data["hours"] == 2 and len(data["rows"]) == 2
    assert data["sampled"]["seed"] == 3 and sum(data["sampled"]["per_hour"]) == data["sampled"]["visits"]
    assert main(["plan", "--params", str(f), "--set", "abuse_share=0.3", "--time-scale", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["time_scale"] == 1 and data["stats"]["chats_with_abuser"] > 0.3


@pytest.mark.parametrize("argv, fragment", [
    (["plan", "no_such_scenario"], "unknown scenario 'no_such_scenario'"),
    (["plan", "--set", "abuse_shar=0.1"], "unknown population parameter 'abuse_shar'"),
    (["plan", "--set", "abuse_share"], "expected KEY=VALUE"),
    (["plan", "--hours", "0"], "hours must be a positive number"),
    (["plan", "missing.toml"], "no such parameter file"),
])
def test_plan_command_errors_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_plan_command_resolves_a_scenario_name(tmp_path, monkeypatch, capsys):
    """A name resolves to <scenarios dir>/<name>.toml (pointed at a temporary dir here)."""
    import harness.commands.plan as plan_cmd
    (tmp_path / "crowd.toml").write_text("[population]\ndau = 123456\n[run]\nhours = 1\n")
    (tmp_path / "pyonly.py").write_text("")
    monkeypatch.setattr(plan_cmd, "_scenario_dir", lambda: tmp_path)
    assert main(["plan", "crowd"]) == 0
    out = capsys.readouterr().out
    assert "chatload plan: crowd (dau 123,456)" in out and "1 model hours" in out
    assert main(["plan", "pyonly"]) == 2
    assert "has no scenarios/pyonly.toml" in capsys.readouterr().err
