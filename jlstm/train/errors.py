"""The ways a run stops on purpose, each with a message that says why and what to do.

:class:`ConfigError`: the run cannot start as configured (a bad key, data that
cannot be used, a workdir that is a file or in use, a config that does not fit
the checkpoint it would resume). :class:`RunError`: the run cannot go on (a
non-finite loss, a full disk, a save that did not happen). A command line
prints either one's message as a single line.
"""


class ConfigError(ValueError):
    """A config that cannot run; the message names the key."""


class ResumeError(ConfigError):
    """A config that does not fit the run it would resume (a changed model or
    optimizer, fewer steps than were done); the message names the fields."""


class WorkdirError(ConfigError):
    """The workdir cannot be used: it is a file, or another run holds it."""


class RunError(RuntimeError):
    """A run that cannot go on; the message names the cause and what to do."""


class NonFiniteError(RunError):
    """The loss or the gradient stopped being finite; training stopped."""


class DiskFullError(RunError):
    """The disk filled up while the run wrote to its workdir."""


class CheckpointError(RunError):
    """A checkpoint that cannot be read, or a save that did not happen."""
