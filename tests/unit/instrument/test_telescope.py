"""Array assemblies: the shipped SKA-Mid figures and OSKAR telescope models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import EarthLocation

from srcnet_sim.errors import UserInputError
from srcnet_sim.instrument import Site, load_telescope


def test_aastar_has_144_dishes_of_two_kinds():
    tel = load_telescope("SKA-MID-AAstar")
    assert tel.n_dish == 144 and tel.n_baselines == 10296
    kinds = dict(zip(*np.unique(tel.dish_types, return_counts=True)))
    assert kinds == {"meerkat": 64, "ska": 80}
    assert set(tel.diameters_m[np.array(tel.dish_types) == "meerkat"]) == {13.5}
    assert set(tel.diameters_m[np.array(tel.dish_types) == "ska"]) == {15.0}


@pytest.mark.parametrize("name, n", [("SKA-MID-AA0.5", 4), ("SKA-MID-AA1", 8), ("SKA-MID-AA2", 64), ("SKA-MID-AA4", 197)])
def test_assembly_sizes(name, n):
    assert load_telescope(name).n_dish == n


def test_positions_sit_on_the_site():
    """The array reference point comes from the file; every dish is within ~200 km of it, near the ellipsoid."""
    tel = load_telescope("SKA-MID-AAstar")
    assert tel.site.lon_deg == pytest.approx(21.443803)
    assert tel.site.lat_deg == pytest.approx(-30.712925)
    geodetic = EarthLocation.from_geocentric(*tel.itrf_m.T, unit=u.m).to_geodetic()
    assert np.all(np.abs(geodetic.height.to_value(u.m)) < 1500)
    origin = tel.site.itrf_m()
    assert np.linalg.norm(tel.itrf_m - origin, axis=1).max() < 2e5
    assert 1.0e5 < tel.longest_baseline_m() < 1.2e5


@pytest.mark.parametrize("lon_deg, lat_deg, height_m", [(21.443803, -30.712925, 1050.0), (116.63, -26.70, 377.8),
                                                        (-107.6184, 34.0784, 2124.0), (0.0, 90.0, -50.0)])
def test_a_site_is_where_astropy_puts_it(lon_deg: float, lat_deg: float, height_m: float):
    """Site (erfa, without astropy.coordinates) gives astropy's EarthLocation position, and the site back."""
    site = Site(lon_deg, lat_deg, height_m)
    astropy_site = EarthLocation.from_geodetic(lon_deg * u.deg, lat_deg * u.deg, height_m * u.m)
    np.testing.assert_allclose(site.itrf_m(), [c.to_value(u.m) for c in astropy_site.to_geocentric()], rtol=0, atol=1e-8)
    back = site.earth_location().to_geodetic()
    assert (back.lon.to_value(u.deg), back.lat.to_value(u.deg)) == pytest.approx((lon_deg, lat_deg), abs=1e-10)
    assert back.height.to_value(u.m) == pytest.approx(height_m, abs=1e-6)


def test_provenance_ships_with_the_data():
    from importlib import resources

    text = resources.files("srcnet_sim.instrument").joinpath("data", "ska_mid_array_configs.csv").read_text()
    assert "ska-ost-array-config" in text.splitlines()[2]


def test_oskar_telescope_model(tmp_path: Path):
    tm = tmp_path / "mini.tm"
    tm.mkdir()
    (tm / "position.txt").write_text("21.443803 -30.712925 1050\n")
    (tm / "layout.txt").write_text("0,0,0\n100,0,0\n0,250,1\n")
    tel = load_telescope(str(tm))
    assert tel.n_dish == 3 and tel.name == "mini"
    d = np.linalg.norm(tel.itrf_m[1] - tel.itrf_m[0])
    assert d == pytest.approx(100.0, abs=1e-6)


def test_oskar_model_without_layout(tmp_path: Path):
    (tmp_path / "position.txt").write_text("21 -30\n")
    with pytest.raises(UserInputError, match="^TELESCOPE: .*layout.txt"):
        load_telescope(str(tmp_path))
