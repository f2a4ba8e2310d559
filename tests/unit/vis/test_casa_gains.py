"""GAINS=on checked by CASA 6.7, an independent tool: our true caltables undo our corruption in `applycal`, and
`gaincal` against our MODEL_DATA finds our gains in the corrupted data within the noise's expected error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from casa_offline import casa_home, run_casa  # noqa: F401 (casa_home is a fixture)
from conftest import run_cli, unpack_ms, write_csv_sky
from srcnet_sim.products.caltables import TABLE_NAMES

RA0, DEC0 = 150.12, 2.21
# Large corruptions, so that an error in any term (order, sign, conjugation) shows far above 1e-5.
STRONG_GAINS = {"GAINS": "on", "GAIN_AMP_STD": "0.2", "GAIN_PHASE_STD_DEG": "40", "GAIN_AMP_DRIFT": "0.1",
                "GAIN_PHASE_DRIFT_DEG": "20", "GAIN_CORR_TIME_S": "1200", "GAIN_BANDPASS_RIPPLE": "0.1",
                "GAIN_LEAKAGE_STD": "0.1"}
BASE = {"TELESCOPE": "SKA-MID-AA1", "NUM_TIME_STAMPS": "6", "OBS_LENGTH_HOURS": "2", "OBS_ID": "gains",
        "RUCIO_NAMESPACE": "sim"}


def _run(out: Path, sky: Path, products: list[str], **settings: str) -> Path:
    out.mkdir()
    result = run_cli(["run", *products], env={"OUT_DIR": str(out), "SKY_MODEL": str(sky), **BASE, **settings})
    assert result.returncode == 0, result.stderr
    return out / "sim"


def _unpack_caltables(staged: Path, into: Path) -> Path:
    return unpack_ms(staged / "truth_caltables.tar", into)


@pytest.fixture(scope="module")
def sky(tmp_path_factory) -> Path:
    """A polarised source near the centre (the D-terms mix Q and U into the parallel hands) and two off-axis."""
    cos_dec = np.cos(np.radians(DEC0))
    rows = [(RA0 + 20 / 3600 / cos_dec, DEC0, 1.0, 0.1, -0.05, 0.01),
            (RA0 - 300 / 3600 / cos_dec, DEC0 + 250 / 3600, 0.5, 0.0, 0.0, 0.0),
            (RA0 + 200 / 3600 / cos_dec, DEC0 - 380 / 3600, 0.3, 0.0, 0.03, 0.0)]
    return write_csv_sky(tmp_path_factory.mktemp("sky") / "sky.csv", rows, "ra_deg,dec_deg,i_jy,q_jy,u_jy,v_jy")


def test_applycal_with_our_true_caltables_gives_the_uncorrupted_data(casa_home: Path, sky: Path, tmp_path: Path):
    corrupted = _run(tmp_path / "on", sky, ["--vis", "--truth"], MODEL_DATA="on", **STRONG_GAINS)
    ideal = _run(tmp_path / "off", sky, ["--vis"])
    ms = unpack_ms(corrupted / "measurements.ms.tar", tmp_path / "ms_on")
    caltables = _unpack_caltables(corrupted, tmp_path / "cal")
    assert sorted(p.name for p in caltables.iterdir()) == sorted(TABLE_NAMES.values())
    gaintable = [str(caltables / TABLE_NAMES[kind]) for kind in ("G", "B", "Df")]
    run_casa(casa_home, f"""
        import json
        from casatasks import applycal
        applycal(vis={str(ms)!r}, gaintable={gaintable!r}, interp=["linear", "nearest", "nearest"], parang=False,
                 calwt=False)
        print(json.dumps({{}}))
        """, tmp_path)
    with table(str(ms), ack=False) as t:
        calibrated, raw, model = t.getcol("CORRECTED_DATA"), t.getcol("DATA"), t.getcol("MODEL_DATA")
    with table(str(unpack_ms(ideal / "measurements.ms.tar", tmp_path / "ms_off")), ack=False) as t:
        truth = t.getcol("DATA")
    scale = np.abs(truth).max()
    corruption, residual = np.abs(raw - truth).max() / scale, np.abs(calibrated - truth).max() / scale
    print(f"applycal: DATA differs from GAINS=off by {corruption:.3g}, CORRECTED_DATA by {residual:.3g} (relative)")
    assert corruption > 0.1  # the gains did corrupt DATA
    assert residual <= 1e-5
    np.testing.assert_array_equal(model, truth)  # MODEL_DATA=on keeps the visibilities before the gains
    meta = json.loads((corrupted / "truth_caltables.tar.meta").read_text())["meta"]
    ms_meta = json.loads((corrupted / "measurements.ms.tar.meta").read_text())["meta"]
    assert (meta["dataproduct_type"], meta["dataproduct_subtype"], meta["obs_id"]) == ("measurements", "truth-gains",
                                                                                      "gains")
    for key in ("t_min", "t_max", "em_min", "em_max", "em_xel", "s_ra", "s_dec"):
        assert meta[key] == pytest.approx(ms_meta[key], rel=1e-12), key


def test_gaincal_against_our_model_data_recovers_our_gains_within_the_noise(casa_home: Path, sky: Path,
                                                                            tmp_path: Path):
    """gaincal solves G per integration against MODEL_DATA (MODEL_DATA=on: the three sources before gains and
    noise). Noise on; no bandpass ripple or leakage, so that G alone is to be found. CASA's gains are referenced
    to dish 0 (its phase zero in each feed): ours are compared after the same referencing, against the error the
    noise gives an antenna-based solution on a 1 Jy field, sigma / sqrt((n_dish - 1) n_chan) per real component
    (the field's total flux is 1.8 Jy, its visibilities' amplitude varies about 1 Jy)."""
    staged = _run(tmp_path / "run", sky, ["--vis", "--truth"], NOISE="on", MODEL_DATA="on",
                  **{**STRONG_GAINS, "GAIN_BANDPASS_RIPPLE": "0", "GAIN_LEAKAGE_STD": "0"})
    ms = unpack_ms(staged / "measurements.ms.tar", tmp_path / "ms")
    truth_g = _unpack_caltables(staged, tmp_path / "cal") / TABLE_NAMES["G"]
    solved = tmp_path / "solved.G"
    with table(str(ms / "ANTENNA"), ack=False) as antennas:
        refant = antennas.getcell("NAME", 0)
    run_casa(casa_home, f"""
        import json
        from casatasks import gaincal
        gaincal(vis={str(ms)!r}, caltable={str(solved)!r}, solint="int", refant={refant!r}, gaintype="G",
                calmode="ap", minsnr=0)
        print(json.dumps({{}}))
        """, tmp_path)
    with table(str(ms), ack=False) as t:
        sigma = float(np.median(t.getcol("SIGMA")))
        n_chan = t.getcell("DATA", 0).shape[0]
    gains = {}
    for name, path in (("true", truth_g), ("casa", solved)):
        with table(str(path), ack=False) as t:
            gains[name] = {(round(time, 3), ant): cell[0] for time, ant, cell in
                           zip(t.getcol("TIME"), t.getcol("ANTENNA1"), t.getcol("CPARAM"), strict=True)}
    assert gains["casa"].keys() == gains["true"].keys()
    n_dish = 1 + max(ant for _, ant in gains["true"])
    errors = []
    for (time, ant), solution in gains["casa"].items():
        reference = gains["true"][(time, 0)]
        expected = gains["true"][(time, ant)] * np.conj(reference) / np.abs(reference)
        errors.append(solution - expected)
    errors = np.concatenate(errors)
    sigma_gain = sigma / np.sqrt((n_dish - 1) * n_chan)
    rms = np.sqrt(np.mean(np.concatenate([errors.real, errors.imag]) ** 2))
    print(f"gaincal: error rms {rms:.3g} (max {np.abs(errors).max():.3g}) for an expected {sigma_gain:.3g}")
    assert 0.3 * sigma_gain < rms < 3.0 * sigma_gain, (rms, sigma_gain)
    assert np.abs(errors).max() < 8 * sigma_gain
