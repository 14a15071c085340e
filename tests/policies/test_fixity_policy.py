"""The fixity policy: audit schedule per location, byte budget, repair mode, checked on load."""

from __future__ import annotations

import pytest

from policies import ConfigError, load_fixity_policy, load_settings


def _policy(tmp_path, text: str):
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "fixity.yaml").write_text(text, encoding="utf-8")
    return load_fixity_policy(load_settings(tmp_path, environ={}))


def test_the_shipped_policy(tmp_path):
    policy = load_fixity_policy(load_settings(tmp_path, environ={}))
    assert policy.algorithms == ("sha256",) and policy.full_interval_days == 90
    assert policy.repair == "auto" and policy.daily_byte_budget == 0
    assert policy.interval_for("anywhere") == 90


def test_per_location_intervals_budget_and_repair(tmp_path):
    policy = _policy(tmp_path, """\
algorithms: [sm3, sha256]
audit:
  full_interval_days: 60
  daily_byte_budget: 1000000
  locations:
    offsite: {full_interval_days: 180}
  repair: approve
  checkpoint_files: 50
  checkpoint_seconds: 0
""")
    assert policy.algorithms == ("sha256", "sm3")
    assert policy.interval_for("offsite") == 180 and policy.interval_for("local") == 60
    assert policy.daily_byte_budget == 1_000_000 and policy.repair == "approve"
    assert policy.checkpoint_files == 50 and policy.checkpoint_seconds == 0


@pytest.mark.parametrize("text,words", [
    ("audit:\n  repair: sometimes\n", "audit.repair"),
    ("audit:\n  locations:\n    x: {}\n", "audit"),
    ("audit:\n  daily_byte_budget: lots\n", "audit"),
])
def test_a_bad_policy_names_the_file_and_key(tmp_path, text, words):
    with pytest.raises(ConfigError) as info:
        _policy(tmp_path, text)
    assert "fixity.yaml" in str(info.value) and words in str(info.value)
