"""The one user-facing error type."""


class DpedError(Exception):
  """A problem with the user's input: the CLI prints it as one line and exits 2."""
