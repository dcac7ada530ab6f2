"""Parameters: defaults carry their sources, overrides are checked and name the bad key."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.population import ParamError, PopulationModel, PopulationParams
from harness.population.params import KINDS, param_table

ROOT = Path(__file__).resolve().parent.parent


def test_every_parameter_has_a_source_and_a_kind():
    rows = param_table()
    assert {r["name"] for r in rows} == {f.name for f in dataclasses.fields(PopulationParams)}
    for row in rows:
        assert row["kind"] in KINDS, row
        assert len(row["source"]) > 10, row


def test_docs_list_every_parameter():
    text = (ROOT / "docs" / "population.md").read_text()
    missing = [r["name"] for r in param_table() if f"`{r['name']}`" not in text]
    assert not missing, f"docs/population.md does not document {missing}"


def test_calibrated_defaults():
    p = PopulationParams()
    assert p.dau == 3_000_000
    assert 1.3 <= p.peak_to_trough <= 1.6
    assert 0 <= p.peak_hour_utc <= 4
    assert p.interest_share == 0.2 and p.interest_vocab == 10_000
    assert p.video_share == 0.5 and p.interest_fallback_s == 5.0
    assert 0.01 <= p.abuse_share <= 0.30
    assert 20 <= p.talk_median_s <= 30 and p.talk_sigma == 1.2
    assert p.tail_min_s == 600 and p.tail_max_s == 3600
    assert p.class_shares["keeper"] == pytest.approx(0.10)


def test_overrides_merge_per_key_and_leave_the_rest():
    p = PopulationParams.from_dict({"abuse_share": 0.2, "skip_propensity": {"talker": 0.1}, "dau": 1000})
    assert p.abuse_share == 0.2 and p.dau == 1000 and isinstance(p.dau, int)
    assert p.skip_propensity["talker"] == 0.1
    assert p.skip_propensity["skipper"] == PopulationParams().skip_propensity["skipper"]
    model = PopulationModel(abuse_share=0.3, lang_mix={"en": 0.5, "fr": 0.5})
    assert model.params.abuse_share == 0.3 and model.langs == ("en", "fr")


@pytest.mark.parametrize("overrides, fragment", [
    ({"abuse_shar": 0.1}, "unknown population parameter 'abuse_shar'"),
    ({"abuse_share": 1.5}, "abuse_share = 1.5 is above its maximum 1.0"),
    ({"abuse_share": -0.1}, "abuse_share = -0.1 is below its minimum 0.0"),
    ({"abuse_share": "lots"}, "abuse_share: expected a number"),
    ({"abuse_share": True}, "abuse_share: expected a number"),
    ({"dau": 2.5}, "dau: expected an integer"),
    ({"talk_sigma": float("nan")}, "talk_sigma: expected a finite number"),
    ({"class_shares": {"skipper": 0.9}}, "class_shares must sum to 1"),
    ({"class_shares": {"lurker": 0.1}}, "class_shares: unknown key 'lurker'"),
    ({"class_shares": 0.5}, "class_shares: expected a table"),
    ({"skip_propensity": {"abuser": 2}}, "skip_propensity.abuser = 2.0 is above its maximum 1.0"),
    ({"tail_max_s": 300}, "tail_max_s = 300.0 must exceed tail_min_s"),
    ({"interests_min": 4}, "interests_min = 4 is above interests_max = 3"),
    ({"patience_median_s": {"impatient": 0}}, "patience_median_s.impatient must be positive"),
    ({"lang_mix": {"en": 0.5}}, "lang_mix must sum to 1"),
])
def test_bad_overrides_say_what_is_wrong(overrides, fragment):
    with pytest.raises(ParamError) as info:
        PopulationParams.from_dict(overrides)
    assert fragment in str(info.value)


def test_toml_population_table_and_top_level(tmp_path):
    table = tmp_path / "scenario.toml"
    table.write_text('time_scale = 10\n[population]\nabuse_share = 0.25\n[population.class_shares]\n'
                     'skipper = 0.7\ntalker = 0.1\nkeeper = 0.1\nimpatient = 0.1\n')
    p = PopulationParams.from_toml(table)
    assert p.abuse_share == 0.25 and p.class_shares["skipper"] == 0.7
    flat = tmp_path / "flat.toml"
    flat.write_text("time_scale = 10\nhours = 2\ninterest_share = 0.6\n")
    assert PopulationParams.from_toml(flat).interest_share == 0.6


def test_toml_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[population]\nvideo_shar = 1.0\n")
    with pytest.raises(ParamError, match="unknown population parameter 'video_shar'"):
        PopulationParams.from_toml(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("dau = = 3\n")
    with pytest.raises(ParamError, match="not valid TOML"):
        PopulationParams.from_toml(broken)
    with pytest.raises(ParamError, match="no such parameter file"):
        PopulationParams.from_toml(tmp_path / "missing.toml")
