"""The notification file of SRCNet's newer ingestion, built with the ska-src-mm-notification package."""

from __future__ import annotations

from pathlib import Path

from srcnet_sim.products.obscore import Identity


def notification_text(products_dir: Path, identity: Identity) -> str:
    """The notification (JSON) of the products in `products_dir` (the MS directory and FITS images as made).

    The package's plugins read the MS tables and FITS headers themselves; the access URLs are the
    product names relative to the notification (the MS is staged as `<name>.tar` beside it); the project is
    the identity's namespace and collection, the observation its obs_id.
    """
    from ska_src_mm_notification.builder.notification import NotificationBuilder

    builder = (
        NotificationBuilder()
        .scan_directory(products_dir)
        .set_project_info(project_id=identity.namespace, group_ids=[identity.namespace],
                          project_title=identity.obs_collection)
        .set_observation_info(obs_id=identity.obs_id, obs_title=f"srcnet-sim mock observation {identity.obs_id}",
                              instrument_name="SKA-Mid", facility_name="SKAO")
        .set_scheduling_block_info(sbd_id=f"sbd-{identity.obs_id}")
        .set_execution_block_info(eb_id=f"eb-{identity.obs_id}")
    )
    return builder.build_json()
