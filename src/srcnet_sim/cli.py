"""Command line: `srcnet-sim run`, `srcnet-sim estimate`.

Every setting is an option named after its environment variable (START_FREQ_HZ -> --start-freq-hz).
Precedence: command line > environment > TOML file (--config or SRCNET_SIM_CONFIG) > default.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from srcnet_sim.config import FIELDS, Settings, env_name, load_settings, option_name
from srcnet_sim.errors import UserInputError
from srcnet_sim.progress import configure_logging

PRECEDENCE = ("Settings: command line > environment variable (same name, upper case) > TOML file "
              "(--config FILE or $SRCNET_SIM_CONFIG) > default.")


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """One option per setting, help showing its environment variable and default."""
    parser.add_argument("--config", type=Path, help="TOML file of settings (keys as the environment variables)")
    group = parser.add_argument_group("settings", PRECEDENCE)
    for field in FIELDS:
        info = Settings.model_fields[field]
        default = "a unique UTC timestamp id" if info.default_factory else info.default
        group.add_argument(option_name(field), dest=field, metavar=env_name(field),
                           help=f"{info.description} [env {env_name(field)}; default {default}]")


def add_product_flags(parser: argparse.ArgumentParser) -> None:
    """The seed's product flags."""
    parser.add_argument("--vis", "--visibility", "--visibilities", dest="vis", action="store_true",
                        help="ingest the visibilities (<FILE_PREFIX>measurements.ms)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    cli: dict[str, Any] = {field: getattr(args, field) for field in FIELDS}
    return load_settings(cli=cli, config_file=args.config)


def cmd_run(args: argparse.Namespace) -> int:
    from srcnet_sim.workflow import run

    settings = settings_from_args(args)
    products = {name for name in ("vis",) if getattr(args, name)}
    run(settings, products)
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from srcnet_sim.resources import free_bytes, human
    from srcnet_sim.workflow import plan

    settings = settings_from_args(args)
    run_plan = plan(settings)
    e = run_plan.estimate
    temporary = Path(tempfile.gettempdir())
    lines = [
        f"channels                {e.n_channels}",
        f"time steps              {e.n_times}",
        f"baselines               {e.n_baselines} ({e.n_dishes} dishes)",
        f"correlations            {e.n_correlations}",
        f"sources                 {e.n_sources}",
        f"measurements            {e.measurements}",
        f"MS minimum size         {human(e.ms_min_bytes)} (measurements x 8 bytes)",
        f"MS expected size        {human(e.ms_expected_bytes)}",
        f"image minimum size      {human(e.image_min_bytes)} (npixel^2 x channels x 8 bytes)",
        f"to OUT_DIR              {run_plan.ms_path}",
        f"to temporary directory  nothing ({temporary})",
        f"peak memory             {human(e.peak_memory_bytes)}",
        f"free in OUT_DIR         {human(free_bytes(run_plan.product_dir))}",
        f"free in temporary dir   {human(free_bytes(temporary))}",
    ]
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srcnet-sim", description="Mock SKA-Mid observations as SRCNet data products.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="simulate and write the chosen products", description=PRECEDENCE)
    add_product_flags(run_parser)
    add_settings_options(run_parser)
    run_parser.set_defaults(handler=cmd_run)
    estimate_parser = commands.add_parser("estimate", help="sizes, memory and free space of a run", description=PRECEDENCE)
    add_settings_options(estimate_parser)
    estimate_parser.set_defaults(handler=cmd_estimate)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserInputError as exc:
        print(f"srcnet-sim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
