"""One exception type for every user-facing error: the CLI prints its message on one line."""


class SslabError(Exception):
    """Bad input or an unrecoverable condition the user can fix (message is one line)."""
