"""The one exception type that reaches the user as a message instead of a traceback."""


class UserError(Exception):
    """Bad input the user can fix: the CLI prints the message and exits with status 2."""
