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


def user_message(exc: GeosslError) -> str:
    """``exc``'s message for the user. An error raised in a data loader worker comes back from torch with the worker's
    traceback inside its message ("Caught ... in DataLoader worker process 0. Original Traceback ..."): the error's
    own words are kept, with the worker named."""
    import re

    text = str(exc)
    if "Original Traceback (most recent call last):" not in text:
        return text
    where = re.search(r"in DataLoader worker process \d+", text)
    name = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    own = text.rsplit(name, 1)[1] if name in text else text.rstrip().rsplit("\n", 1)[-1]
    return f"{own.strip()} (raised {where.group(0) if where else 'in a DataLoader worker'})"
