"""The two ways a run stops on purpose."""


class ConfigError(ValueError):
    """A config that cannot run; the message names the key."""


class NonFiniteError(RuntimeError):
    """The loss or the gradient stopped being finite; training stopped."""
