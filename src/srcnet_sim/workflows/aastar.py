"""The seed workflow's entry point: `python -m srcnet_sim.workflows.aastar --vis`.

Configured by the seed's environment variables alone, with the seed's product flags.
"""

from __future__ import annotations

import sys


def aastar(argv: list[str] | None = None) -> int:
    """Run `srcnet-sim run` with the given product flags (settings from the environment)."""
    from srcnet_sim.cli import main  # sets the process's thread settings, then imports the numerics

    return main(["run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(aastar())
