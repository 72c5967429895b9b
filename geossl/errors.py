"""User-facing errors.

Anything a user can cause (a wrong name, a missing file, a corrupt checkpoint, a diverged loss)
raises a :class:`GeosslError`; the CLI prints its message as one paragraph and exits non-zero,
without a traceback. Programming errors stay ordinary exceptions.
"""


class GeosslError(Exception):
    """An error caused by input, data or configuration, with a message meant for the user."""


class UnknownNameError(GeosslError, ValueError):
    """A registry lookup with a name that is not registered."""


class DatasetNotFoundError(GeosslError, FileNotFoundError):
    """A dataset's files are not where we looked, and downloading is not allowed."""


class CheckpointError(GeosslError):
    """A checkpoint or encoder file that is missing, corrupt, or of another kind."""


class ConfigError(GeosslError, ValueError):
    """A config key or value that does not fit the schema."""


class StorageError(GeosslError, OSError):
    """A file could not be written where it belongs: the disk is full, the folder is read-only or not a folder."""


class NonFiniteLossError(GeosslError, FloatingPointError):
    """Training produced a NaN/inf loss; the run stopped and the last good checkpoint was kept."""
