"""The project's exception types: errors a user can cause, and the one-line failures the CLI reports by exit code."""

import errno


class UserInputError(ValueError):
    """Bad input from a user: the message is one line naming the setting and what is allowed.

    The CLI prints the message alone (no traceback) and exits with code 2.
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class ServiceError(RuntimeError):
    """A service the run depends on (Rucio) cannot be used; the message is one line.

    The CLI prints it and exits with code 3; nothing was removed from the staging area.
    """


class DiskFullError(RuntimeError):
    """A volume filled up during the run (ENOSPC, or too little space left to go on safely); one line.

    The CLI prints it and exits with code 4; the run's scratch and partial files were removed.
    """


class QAError(RuntimeError):
    """The QA report cannot be made (PyBDSF missing or failing, not a restored image); one line.

    The CLI prints it and exits with code 5; the run's other products were staged.
    """


def is_disk_full(exc: BaseException) -> bool:
    """A full volume: DiskFullError, ENOSPC/EDQUOT from Python's I/O, or casacore's AipsError carrying it."""
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, RuntimeError) and "No space left on device" in str(exc)
