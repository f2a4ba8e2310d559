"""The channels of a cube's planes (IMAGING_CHANNELS_OUT), checked by the plan before any work (numpy only: a run
without images loads no imaging)."""

from __future__ import annotations

from srcnet_sim.errors import UserInputError


def channel_groups(n_channels: int, channels_out: int | None, setting: str = "IMAGING_CHANNELS_OUT") -> list[tuple[int, int]]:
    """[start, stop) channels of each cube plane: one plane per channel (channels_out None), or channels_out equal
    groups of adjacent channels (a FITS FREQ axis is linear, so the groups must be equal)."""
    planes = n_channels if channels_out is None else channels_out
    if not 1 <= planes <= n_channels or n_channels % planes:
        divisors = [d for d in range(1, n_channels + 1) if n_channels % d == 0]
        raise UserInputError(setting, f"{planes} planes: the {n_channels} channels must split into equal groups "
                             f"(a cube's frequency axis is linear); choose one of {divisors[:12]}"
                             f"{' ...' if len(divisors) > 12 else ''}")
    size = n_channels // planes
    return [(k * size, (k + 1) * size) for k in range(planes)]
