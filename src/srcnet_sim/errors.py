"""The one exception type for errors a user can cause."""


class UserInputError(ValueError):
    """Bad input from a user: the message is one line naming the setting and what is allowed.

    The CLI prints the message alone (no traceback) and exits with code 2.
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")
