"""Errors a user can act on: the message says what was wrong and what to do."""


class HeadLabError(Exception):
    """Base class: its message is shown to the user as it is, never a traceback."""


class ConfigError(HeadLabError):
    """A head configuration or setting that cannot be used."""


class DataError(HeadLabError):
    """A dataset, upload or label file that cannot be used."""


class BackboneError(HeadLabError):
    """A backbone or its weights that cannot be loaded."""
