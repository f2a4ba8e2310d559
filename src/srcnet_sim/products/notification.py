"""The notification file of SRCNet's newer ingestion, built with the ska-src-mm-notification package."""

from __future__ import annotations

from pathlib import Path

from srcnet_sim.config import Settings


def notification_text(products_dir: Path, settings: Settings) -> str:
    """The notification (JSON) of the products in `products_dir` (the MS directory and FITS images as made).

    The package's plugins read the MS tables and FITS headers themselves; the access URLs are the
    product names relative to the notification (the MS is staged as `<name>.tar` beside it).
    """
    from ska_src_mm_notification.builder.notification import NotificationBuilder

    builder = (
        NotificationBuilder()
        .scan_directory(products_dir)
        .set_project_info(project_id=settings.rucio_namespace, group_ids=[settings.rucio_namespace],
                          project_title=settings.obs_collection)
        .set_observation_info(obs_id=settings.obs_id, obs_title=f"srcnet-sim mock observation {settings.obs_id}",
                              instrument_name="SKA-Mid", facility_name="SKAO")
        .set_scheduling_block_info(sbd_id=f"sbd-{settings.obs_id}")
        .set_execution_block_info(eb_id=f"eb-{settings.obs_id}")
    )
    return builder.build_json()
