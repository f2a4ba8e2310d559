"""Settings: the seed's defaults, precedence, and one-line errors for bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from srcnet_sim.config import FIELDS, env_name, load_settings, toml_types
from srcnet_sim.errors import UserInputError


def test_defaults_are_the_seed_job():
    s = load_settings(environ={})
    assert (s.phase_center_ra_deg, s.phase_center_dec_deg) == (150.12, 2.21)
    np.testing.assert_allclose(s.freq_hz, [1.304e9, 1.32175e9, 1.3395e9, 1.35725e9])
    assert s.n_channels == 4
    assert (s.obs_length_hours, s.num_time_stamps, s.interval_s) == (4.0, 24, 600.0)
    assert s.start_date_and_time == "2020-04-26T16:36"
    assert s.imaging_npixel == 2024 and s.imaging_cellsize is None


def test_obs_id_defaults_to_unique_timestamp():
    ids = {load_settings(environ={}).obs_id for _ in range(3)}
    assert len(ids) == 3


def test_precedence_cli_over_env_over_file(tmp_path: Path):
    config = tmp_path / "run.toml"
    config.write_text('NUM_TIME_STAMPS = 5\nseed = 7\nbeam = "none"\n')
    s = load_settings(cli={"num_time_stamps": "9"}, environ={"NUM_TIME_STAMPS": "6", "SEED": "8"}, config_file=config)
    assert (s.num_time_stamps, s.seed, s.beam) == (9, 8, "none")


def test_channel_count_is_robust_to_rounding():
    s = load_settings(environ={"START_FREQ_HZ": "1e9", "END_FREQ_HZ": "1.3e9", "FREQ_INC_HZ": "0.1e9"})
    assert s.n_channels == 3


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"START_FREQ_HZ": "1.3GHz"}, "START_FREQ_HZ"),
        ({"START_FREQ_HZ": "1.4e9"}, "START_FREQ_HZ"),
        ({"FREQ_INC_HZ": "-5"}, "FREQ_INC_HZ"),
        ({"FREQ_INC_HZ": "1e9"}, "FREQ_INC_HZ"),
        ({"NUM_TIME_STAMPS": "0"}, "NUM_TIME_STAMPS"),
        ({"PHASE_CENTER_DEC_DEG": "-91"}, "PHASE_CENTER_DEC_DEG"),
        ({"START_DATE_AND_TIME": "26/04/2020"}, "START_DATE_AND_TIME"),
        ({"OUT_DIR": "/nonexistent/volume"}, "OUT_DIR"),
        ({"PRECISION": "half"}, "PRECISION"),
        ({"IMAGING_CELLSIZE": "-1"}, "IMAGING_CELLSIZE"),
    ],
)
def test_bad_settings_name_the_setting(env, setting):
    with pytest.raises(UserInputError) as info:
        load_settings(environ=env)
    assert str(info.value).startswith(setting + ":")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"END_FREQ_HZ": "abc"}, "END_FREQ_HZ"),
        ({"SKY_MODEL": "NVSS"}, "SKY_MODEL"),
        ({"SKY_MODEL": "MIGHTEE_L1", "SKY_MODEL_PATH": "/nowhere/mightee.fits"}, "SKY_MODEL_PATH"),
        ({"TELESCOPE": "SKA-LOW"}, "TELESCOPE"),
        # COSMOS transits at ~16:40 LST; 12 h later it is below the horizon of SKA-Mid.
        ({"START_DATE_AND_TIME": "2020-04-27T04:36"}, "START_DATE_AND_TIME"),
    ],
)
def test_cli_errors_are_one_line_exit_2_nothing_written(tmp_path: Path, env, setting):
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(["run", "--vis"], env={"OUT_DIR": str(out), **env})
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith(f"srcnet-sim: error: {setting}:"), result.stderr
    assert "Traceback" not in result.stderr
    assert list(out.rglob("*")) == []


def test_horizon_error_states_the_elevation_range(tmp_path: Path):
    with pytest.raises(UserInputError, match=r"elevation -?\d+\.\d to -?\d+\.\d deg"):
        from srcnet_sim.run.plan import plan

        plan(load_settings(environ={"START_DATE_AND_TIME": "2020-04-27T04:36", "NUM_TIME_STAMPS": "2"}))


def _toml_literal(value) -> str:
    """`value` as a TOML value (a table as an inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


@pytest.mark.parametrize("field", FIELDS)
def test_every_toml_setting_refuses_values_of_other_types(tmp_path: Path, field: str):
    """A boolean, array, table, and a string, integer or float where the setting does not take one: refused with the
    setting named; environment strings keep being parsed."""
    accepted, described = toml_types(field)
    wrong = [True, [1], {"a": 1}, 2020 if field == "start_date_and_time" else None]
    wrong += [v for v, kind in (("4", str), (4, int), (4.5, float)) if kind not in accepted and not
              (kind is int and float in accepted)]
    for i, value in enumerate(v for v in wrong if v is not None):
        config = tmp_path / f"{field}-{i}.toml"
        config.write_text(f"{env_name(field)} = {_toml_literal(value)}\n")
        with pytest.raises(UserInputError, match=rf"^{env_name(field)}: .* gives a TOML \w+ .* where {re.escape(described)}"):
            load_settings(environ={}, config_file=config)


def test_toml_values_of_the_right_type_are_taken(tmp_path: Path):
    config = tmp_path / "typed.toml"
    config.write_text('SEED = 7\nSTART_FREQ_HZ = 1304000000\nMEMORY_LIMIT = "8GiB"\nIMAGING_CELLSIZE = 2e-5\n'
                      "START_DATE_AND_TIME = 2021-03-04T05:06:00Z\n")
    s = load_settings(environ={}, config_file=config)
    assert (s.seed, s.start_freq_hz, s.memory_limit, s.imaging_cellsize) == (7, 1.304e9, 8 * 2**30, 2e-5)
    assert s.start_datetime.isoformat() == "2021-03-04T05:06:00+00:00"
    assert load_settings(environ={"SEED": "7", "NUM_TIME_STAMPS": "4"}).num_time_stamps == 4  # env: strings parsed


@pytest.mark.parametrize("start, hours, inside", [
    ("1962-01-02T00:00", 1.0, True), ("1962-01-01T23:00", 2.0, False), ("2099-12-31T20:00", 4.0, True),
    ("2099-12-31T20:00", 4.01, False), ("0001-01-01T00:00", 4.0, False), ("9999-12-31T00:00", 48.0, False),
])
def test_observation_dates_lie_within_the_stated_range(start: str, hours: float, inside: bool):
    environ = {"START_DATE_AND_TIME": start, "OBS_LENGTH_HOURS": str(hours)}
    if inside:
        assert load_settings(environ=environ).end_datetime.year <= 2100
    else:
        with pytest.raises(UserInputError, match=r"^START_DATE_AND_TIME: .* outside 1962-01-02 \.\. 2100-01-01"):
            load_settings(environ=environ)


def test_a_toml_setting_given_twice_in_two_spellings_is_refused(tmp_path: Path):
    config = tmp_path / "twice.toml"
    config.write_text("SEED = 1\nseed = 2\n")
    with pytest.raises(UserInputError, match=r"^SEED: is given twice in .* \(as SEED and seed\)"):
        load_settings(environ={}, config_file=config)
