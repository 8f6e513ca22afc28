"""The trainer's user errors: a run that cannot start or go on, and a misconfigured distributed run."""


class TrainError(Exception):
    """A run cannot start or cannot go on; the message says why."""


class DistributedError(Exception):
    """A distributed run cannot start or is misconfigured; the message says why, in one line."""
