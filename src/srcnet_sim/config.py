"""One validated configuration object, filled from defaults < TOML file < environment < CLI.

Setting names are the seed workflow's environment variables (SKY_MODEL, START_FREQ_HZ, ...);
the same names in lower case with dashes are CLI options, and either spelling works as a TOML key.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from srcnet_sim.constants import SECONDS_PER_HOUR
from srcnet_sim.errors import UserInputError

DEFAULT_OUT_DIR = "./srcnet-products"
# Karabo's public object store (its MIGHTEESurveyDownloadObject); sky.download fetches it.
MIGHTEE_L1_URL = ("https://rgw.cscs.ch/ska:karabo-public/surveys/mightee/"
                  "MIGHTEE_Continuum_Early_Science_COSMOS_Level1_v0.fits")
CONFIG_FILE_ENV = "SRCNET_SIM_CONFIG"
# Upper bounds that keep a mistyped value from becoming an absurd run (memory and disk are checked later).
MAX_CHANNELS = 1_000_000
MAX_TIME_STAMPS = 10_000_000
MIN_NPIXEL = 32
MAX_FREQ_HZ = 1e12  # radio astronomy ends below 1 THz
# Rucio turns a lifetime into an expiry date: beyond about 8000 years Python's datetime overflows at ingestion.
MAX_LIFETIME_S = 100 * 365 * 86400
# The dates an observation may cover. From 1962-01-02: the IERS Earth-orientation series (EOP C04, casacore's
# IERSeop97) start there, and UTC itself in 1961; before it there is no UT1 to compute UVW with. Until 2100-01-01:
# leap seconds end by 2035 (CGPM 2022, Resolution 4), so UT1-UTC is then unbounded and unpredictable (tens of
# seconds by 2100, arcminutes of Earth rotation): a simulation should not claim more. Inside the range, dates past the
# measures tables in use are extrapolated with a warning (simulate.measures_data.coverage_notice).
EARLIEST_START = datetime(1962, 1, 2, tzinfo=timezone.utc)
LATEST_END = datetime(2100, 1, 1, tzinfo=timezone.utc)
# IVOA Identifiers 2.0: an authority id is at least three characters of this set, starting with a letter or digit.
IVOID_AUTHORITY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_.!~*'()+=]{2,}")
IVOID_PATH_PATTERN = re.compile(r"(/[A-Za-z0-9\-_.!~*'()+=]*)*")


BYTE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
              "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3,
              "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}
BYTES_PATTERN = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*")


def parse_bytes(text: str) -> int:
    """'8GiB', '8Gi', '500MB', '1e9'-free integers -> bytes; anything else is returned for pydantic to refuse."""
    match = BYTES_PATTERN.fullmatch(text)
    if match is None or match.group(2).lower() not in BYTE_UNITS:
        raise ValueError("is not a size: a number of bytes, or with a unit such as 8GiB, 8Gi, 500MB")
    return int(float(match.group(1)) * BYTE_UNITS[match.group(2).lower()])


def _unique_obs_id() -> str:
    return datetime.now(timezone.utc).strftime("srcnet-sim-%Y%m%dT%H%M%S%fZ")


class Settings(BaseModel):
    """All settings of one run. Field names are the environment variable names in lower case."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    sky_model: str = Field("SYNTHETIC", description="SYNTHETIC, SYNTHETIC_HI (seeded HI galaxies whose lines fall in the band), MIGHTEE_L1, or the path of a catalogue file (OSKAR text, CSV, FITS, Karabo HI HDF5 .h5)")
    sky_model_path: str | None = Field(None, description="catalogue file for a named sky model (MIGHTEE_L1)")
    sky_model_cache: str | None = Field(None, description="directory where SKY_MODEL=MIGHTEE_L1 is downloaded once and reused (default: ~/.cache/srcnet-sim)")
    mightee_l1_url: str = Field(MIGHTEE_L1_URL, description="where SKY_MODEL=MIGHTEE_L1 is downloaded from when SKY_MODEL_PATH is unset (a mirror may be given)")
    synthetic_sources: int = Field(10_000, ge=1, le=10_000_000, description="number of sources of the SYNTHETIC field (galaxies of SYNTHETIC_HI)")
    phase_center_ra_deg: float = Field(150.12, ge=0.0, lt=360.0, description="phase centre right ascension (J2000), degrees")
    phase_center_dec_deg: float = Field(2.21, ge=-90.0, le=90.0, description="phase centre declination (J2000), degrees")
    start_freq_hz: float = Field(1.304e9, gt=0.0, le=MAX_FREQ_HZ, description="centre of the first channel, Hz")
    end_freq_hz: float = Field(1.375e9, gt=0.0, le=MAX_FREQ_HZ, description="end of the band, Hz: channels = floor((END - START) / INC)")
    freq_inc_hz: float = Field(1.775e7, gt=0.0, description="channel spacing and width, Hz")
    obs_length_hours: float = Field(4.0, gt=0.0, le=24.0 * 30, description="observation length, hours")
    num_time_stamps: int = Field(24, ge=1, le=MAX_TIME_STAMPS, description="number of time samples (dumps)")
    start_date_and_time: str = Field("2020-04-26T16:36", description="UTC start of the observation, ISO 8601")
    imaging_npixel: int = Field(2024, ge=MIN_NPIXEL, description="image size, pixels per side (even)")
    imaging_cellsize: float | None = Field(None, gt=0.0, description="image cell, radians; None derives FOV / npixel")
    imaging_channels_out: int | None = Field(None, ge=1, description="planes of the cubes (--cube, --dirty-cube): the "
                                             "channels imaged in this many equal groups (default: one plane per channel)")
    contsub: Literal["off", "on"] = Field("off", description="on: the cleaned MFS image's model is subtracted from the "
                                          "visibilities before cube imaging (uv-plane continuum subtraction), so that "
                                          "the cubes show the lines")
    rucio_namespace: str = Field("testing", min_length=1, description="Rucio scope of the products")
    rucio_lifetime: int = Field(86400, ge=1, le=MAX_LIFETIME_S, description="Rucio replica lifetime, seconds")
    ivoid_authority: str = Field("test.skao", description="IVOA identifier authority")
    ivoid_path: str = Field("/~", description="IVOA identifier path")
    obs_collection: str = Field("SKAO/SKAMID", description="ObsCore obs_collection")
    obs_id: str = Field(default_factory=_unique_obs_id, description="ObsCore obs_id (default: unique UTC timestamp id)")
    file_prefix: str = Field("", description="prefix of every product file name")
    out_dir: str = Field(DEFAULT_OUT_DIR, description="output directory; must exist when set")
    telescope: str = Field("SKA-MID-AAstar", description="SKA-MID-AA0.5, -AA1, -AA2, -AAstar, -AA4, or an OSKAR .tm directory")
    beam: Literal["gaussian", "gaussian-15m", "everybeam", "none"] = Field(
        "gaussian", description="primary beam model: gaussian, gaussian-15m, everybeam (SKA dishes from EveryBeam's "
        "SKA-Mid model, MeerKAT dishes' H and V patterns from katbeam, turning with the parallactic angle), none")
    sky_filter_fwhm: float = Field(3.0, gt=0.0, le=100.0, description="sources are kept within this many power-beam "
                                   "FWHM (1.25 lambda / 15 m at mid-band) of the phase centre; more reaches the sidelobes")
    noise: Literal["off", "on"] = Field("off", description="thermal noise from per-dish-type SEFD")
    seed: int = Field(42, ge=0, description="seed of every random draw (sky, noise, gains)")
    gains: Literal["off", "on"] = Field("off", description="per-dish complex gains, bandpass and leakage (D-terms) "
                                        "applied to DATA; with --truth their CASA caltables are staged")
    gain_amp_std: float = Field(0.05, ge=0.0, le=1.0, description="GAINS=on: rms of each dish's constant log amplitude "
                                "(about its fractional amplitude rms)")
    gain_phase_std_deg: float = Field(10.0, ge=0.0, le=360.0, description="GAINS=on: rms of each dish's constant phase, degrees")
    gain_amp_drift: float = Field(0.02, ge=0.0, le=1.0, description="GAINS=on: rms of the log-amplitude drift in time")
    gain_phase_drift_deg: float = Field(5.0, ge=0.0, le=360.0, description="GAINS=on: rms of the phase drift in time, degrees")
    gain_corr_time_s: float = Field(1800.0, gt=0.0, description="GAINS=on: correlation time of the drifts "
                                    "(squared-exponential Gaussian process), seconds")
    gain_bandpass_ripple: float = Field(0.02, ge=0.0, le=1.0, description="GAINS=on: rms of each bandpass Legendre "
                                        "coefficient (P1-P3) of log amplitude and of phase (rad)")
    gain_leakage_std: float = Field(0.02, ge=0.0, le=1.0, description="GAINS=on: rms of each real component of the "
                                    "D-terms (polarisation leakage)")
    model_data: Literal["off", "on"] = Field("off", description="on: the MS's MODEL_DATA column holds the visibilities "
                                             "before gains and noise, as calibration tests need (the MS grows by DATA's size)")
    rfi: Literal["off", "on"] = Field("off", description="on: L-band interferers (GNSS satellites, DME aircraft, GSM "
                                      "900 towers) added to DATA and flagged in FLAG; with --truth their mask is staged")
    rfi_flag_sigma: float = Field(5.0, gt=0.0, le=1000.0, description="RFI=on: the flagger's threshold on the residual, "
                                  "in units of the radiometer noise rms")
    vis_format: Literal["msv2", "msv4", "both"] = Field("msv2", description="--vis stages the MeasurementSet v2 "
                                                        "(a tar of the CASA MS), v4 (a zip of xradio's zarr processing "
                                                        "set, read in place) or both, written in the same pass")
    precision: Literal["single", "double"] = Field("single", description="visibility precision")
    correlations: Literal["cross", "cross+auto"] = Field("cross", description="baselines written")
    smearing: Literal["bandwidth", "off", "bandwidth+time"] = Field("bandwidth", description="smearing applied")
    executor: Literal["local", "dask"] = Field("local", description="where blocks are computed: local (this machine) or dask (a Dask cluster)")
    dask_scheduler_address: str | None = Field(None, description="EXECUTOR=dask: the scheduler, e.g. tcp://scheduler:8786 (default: a LocalCluster of worker processes)")
    dask_workers: int | None = Field(None, ge=1, le=4096, description="EXECUTOR=dask without a scheduler address: LocalCluster worker processes (default: cores / WORKER_THREADS)")
    memory_limit: int | None = Field(None, ge=1, description="memory budget of one worker, bytes or e.g. 8GiB (default: 0.8 x the memory available here, container limit included)")
    worker_threads: int | None = Field(None, ge=1, le=1024, description="threads computing one block (default: all cores; EXECUTOR=dask: cores / DASK_WORKERS)")
    backend: Literal["auto", "cpu", "gpu"] = Field("auto", description="predictor: the GPU when CuPy sees a CUDA device "
                                                   "and the run is longer than the GPU kernel's compilation (auto), "
                                                   "or cpu, or gpu (an error without a device)")

    @field_validator("imaging_cellsize", "imaging_channels_out", "sky_model_path", "sky_model_cache", "dask_scheduler_address", "dask_workers",
                     "memory_limit", "worker_threads", mode="before")
    @classmethod
    def _none_string(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("none", ""):
            return None
        return value

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _bytes(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() not in ("none", ""):
            return parse_bytes(value)
        return value

    @field_validator("mightee_l1_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or not parts.path.rstrip("/").rsplit("/", 1)[-1]:
            raise ValueError("must be the http(s) URL of the MIGHTEE Level-1 .fits file")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        """No setting may hold control characters (a newline would land in paths and metadata)."""
        if isinstance(value, str) and any(not ch.isprintable() for ch in value):
            raise ValueError("holds a control character (newline, tab, ...); use printable characters only")
        return value

    @field_validator("imaging_npixel")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (the imager needs an even grid), at least {MIN_NPIXEL}")
        return value

    @field_validator("ivoid_authority")
    @classmethod
    def _authority(cls, value: str) -> str:
        if not IVOID_AUTHORITY_PATTERN.fullmatch(value):
            raise ValueError("is not an IVOA authority id: at least 3 characters, letters, digits and -_.!~*'()+= "
                             "starting with a letter or digit (e.g. test.skao)")
        return value

    @field_validator("ivoid_path")
    @classmethod
    def _ivoid_path(cls, value: str) -> str:
        if not value.startswith("/") or not IVOID_PATH_PATTERN.fullmatch(value):
            raise ValueError("is not an IVOA resource key: start with '/', then letters, digits and -_.!~*'()+=/ (e.g. /~)")
        return value

    @field_validator("start_date_and_time")
    @classmethod
    def _parse_start(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError("is not an ISO 8601 date and time such as 2020-04-26T16:36") from exc
        return value

    @model_validator(mode="after")
    def _check_dates(self) -> "Settings":
        try:
            inside = EARLIEST_START <= self.start_datetime and self.end_datetime <= LATEST_END
        except OverflowError:  # past year 9999
            inside = False
        if not inside:
            raise ValueError(
                f"START_DATE_AND_TIME {self.start_date_and_time} and OBS_LENGTH_HOURS {self.obs_length_hours:g} reach outside "
                f"{EARLIEST_START:%Y-%m-%d} .. {LATEST_END:%Y-%m-%d}: Earth-orientation data (UT1) exist from 1962, "
                "and UTC's leap seconds end by 2035 (UT1 unpredictable after)")
        return self

    @model_validator(mode="after")
    def _check_band(self) -> "Settings":
        if self.start_freq_hz >= self.end_freq_hz:
            raise ValueError(f"START_FREQ_HZ ({self.start_freq_hz:g}) must be below END_FREQ_HZ ({self.end_freq_hz:g})")
        ratio = (self.end_freq_hz - self.start_freq_hz) / self.freq_inc_hz
        if not ratio <= MAX_CHANNELS:
            raise ValueError(
                f"FREQ_INC_HZ {self.freq_inc_hz:g} Hz gives {ratio:.3g} channels between START_FREQ_HZ and END_FREQ_HZ; "
                f"at most {MAX_CHANNELS} are allowed: widen FREQ_INC_HZ or narrow the band"
            )
        if self.n_channels < 1:
            raise ValueError(
                f"FREQ_INC_HZ ({self.freq_inc_hz:g}) is wider than END_FREQ_HZ - START_FREQ_HZ "
                f"({self.end_freq_hz - self.start_freq_hz:g}): zero channels"
            )
        return self

    # ---- derived quantities (SI) ----
    @property
    def n_channels(self) -> int:
        """floor((END - START) / INC), robust to rounding (the seed's values give exactly 4)."""
        ratio = (self.end_freq_hz - self.start_freq_hz) / self.freq_inc_hz
        return int(math.floor(ratio * (1.0 + 1e-9) + 1e-9))

    @property
    def freq_hz(self) -> np.ndarray:
        """(n_channels,) channel centres, Hz: START + k * INC."""
        return self.start_freq_hz + np.arange(self.n_channels) * self.freq_inc_hz

    @property
    def length_s(self) -> float:
        return self.obs_length_hours * SECONDS_PER_HOUR

    @property
    def interval_s(self) -> float:
        return self.length_s / self.num_time_stamps

    @property
    def end_datetime(self) -> datetime:
        """UTC end of the observation (start + OBS_LENGTH_HOURS; leap seconds aside)."""
        return self.start_datetime + timedelta(seconds=self.length_s)

    @property
    def phase_centre_rad(self) -> tuple[float, float]:
        return math.radians(self.phase_center_ra_deg), math.radians(self.phase_center_dec_deg)

    @property
    def start_datetime(self) -> datetime:
        parsed = datetime.fromisoformat(self.start_date_and_time.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


FIELDS = tuple(Settings.model_fields)


def env_name(field: str) -> str:
    return field.upper()


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _normalise_keys(values: dict[str, Any], origin: str) -> dict[str, Any]:
    out, spelled = {}, {}
    for key, value in values.items():
        field = key.lower().replace("-", "_")
        if field not in FIELDS:
            raise UserInputError(key, f"unknown setting in {origin}; known settings: {', '.join(env_name(f) for f in FIELDS)}")
        if field in out:
            raise UserInputError(env_name(field), f"is given twice in {origin} (as {spelled[field]} and {key})")
        out[field], spelled[field] = value, key
    return out


# Settings given in TOML as a size string ("8GiB") as well as a number.
TOML_SIZE_FIELDS = ("memory_limit",)


def toml_types(field: str) -> tuple[tuple[type, ...], str]:
    """The TOML value types a setting accepts, and their name for messages: a TOML value has a type, and a
    boolean or a string where a number belongs is a mistake (environment and CLI strings are parsed instead)."""
    annotation = Settings.model_fields[field].annotation
    kinds = [a for a in (get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,))
             if a is not type(None)]
    accepted: list[type] = []
    for kind in kinds:
        if get_origin(kind) is Literal or kind is str:
            accepted.append(str)
        elif kind is float:
            accepted += [int, float]
        elif kind is int:
            accepted += [int] + ([str] if field in TOML_SIZE_FIELDS else [])
    names = {int: "an integer", float: "a number", str: "a string"}
    if field in TOML_SIZE_FIELDS:
        return tuple(accepted), "an integer number of bytes or a size string such as \"8GiB\""
    described = "a number" if float in accepted else " or ".join(dict.fromkeys(names[a] for a in accepted))
    return tuple(accepted), described


def _typed_toml_values(values: dict[str, Any], origin: str) -> dict[str, Any]:
    """The TOML values checked against their settings' types (see toml_types); a TOML date-time for
    START_DATE_AND_TIME (its natural type there) becomes its ISO 8601 text."""
    out = {}
    for field, value in values.items():
        accepted, described = toml_types(field)
        if field == "start_date_and_time" and isinstance(value, (datetime, date)):
            value = value.isoformat()
        if isinstance(value, bool) or not isinstance(value, accepted):
            kind = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
                    dict: "table"}.get(type(value), type(value).__name__)
            raise UserInputError(env_name(field), f"{origin} gives a TOML {kind} ({value!r}) where {described} is "
                                 "expected")
        out[field] = value
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """Settings from a TOML file (top-level keys, either spelling), each of the TOML type its setting has."""
    from srcnet_sim.fs.input_files import MAX_TOML_BYTES, read_text

    text = read_text(path, "--config", "configuration file", MAX_TOML_BYTES)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError("--config", f"{path} is not valid TOML ({exc})") from exc
    return _typed_toml_values(_normalise_keys(data, str(path)), str(path))


def settings_from_env(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The settings present in an environment, keyed by field name."""
    return {field: environ[env_name(field)] for field in FIELDS if env_name(field) in environ}


def load_settings(
    cli: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge defaults < TOML file < environment < CLI into validated Settings.

    Raises UserInputError with a one-line message naming the setting.
    """
    environ = dict(os.environ if environ is None else environ)
    if config_file is None and environ.get(CONFIG_FILE_ENV):
        config_file = Path(environ[CONFIG_FILE_ENV])
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged.update(read_toml(config_file))
    merged.update(settings_from_env(environ))
    merged.update({k: v for k, v in _normalise_keys(cli or {}, "the command line").items() if v is not None})
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        raise _user_error(exc) from None
    if "out_dir" in merged and not Path(settings.out_dir).is_dir():
        raise UserInputError("OUT_DIR", f"{settings.out_dir} does not exist; create it (in Kubernetes: mount the volume) or unset OUT_DIR")
    return settings


def _user_error(exc: ValidationError) -> UserInputError:
    error = exc.errors()[0]
    loc = [str(part) for part in error.get("loc", ()) if part]
    message = error["msg"].removeprefix("Value error, ")
    if not loc:  # model-level check: the message names its settings
        setting, _, rest = message.partition(" ")
        return UserInputError(setting, rest)
    field = loc[0]
    value = error.get("input")
    described = f"{message} (got {value!r})" if not isinstance(value, dict) else message
    return UserInputError(env_name(field), described)
