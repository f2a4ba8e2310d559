"""The Dask worker plugin of srcnet-sim (imports distributed: loaded only when EXECUTOR=dask)."""

from __future__ import annotations

from distributed import WorkerPlugin


class ProcessSettings(WorkerPlugin):
    """Sets the process-wide settings of the command line (runtime.configure_process) on each worker, explicitly,
    when the plugin is registered; nothing is set at import."""

    name = "srcnet-sim-process-settings"

    def setup(self, worker) -> None:
        from srcnet_sim.run.runtime import configure_process

        configure_process()
