"""The data package's user error."""


class DataError(ValueError):
    """A data source is missing, malformed or unreadable."""
