"""Typed errors of reid-hub, each with the process exit code the CLI returns for it."""
from __future__ import annotations


class ReidHubError(Exception):
    """Base class of every error reid-hub raises on purpose."""

    exit_code = 1


class ConfigError(ReidHubError, ValueError):
    """A configuration value or argument is invalid."""

    exit_code = 2


class UnknownModelError(ConfigError, KeyError):
    """A model name is neither registered nor a loadable folder."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(ReidHubError, ValueError):
    """Input data (metadata table, dataset folder) is missing or malformed."""

    exit_code = 3


class ImageError(DataError):
    """An image cannot be read, decoded or converted."""

    exit_code = 3


class ModelMismatchError(ReidHubError, ValueError):
    """Weights, embeddings or an index do not belong to the model in use."""

    exit_code = 4


class OfflineError(ReidHubError, OSError):
    """A network resource was asked for while no network is available."""

    exit_code = 5


class CheckpointError(ReidHubError, OSError):
    """A training checkpoint is missing, corrupt or from another run."""

    exit_code = 6


class GalleryError(ReidHubError):
    """A gallery operation cannot be done (unknown individual, empty gallery, ...)."""

    exit_code = 7



class ConflictError(ReidHubError):
    """The state changed under a request (a proposal decided by someone else, a name already taken)."""

    exit_code = 8


class AuthError(ReidHubError):
    """A write without the token the service requires."""

    exit_code = 9


class TooLargeError(DataError):
    """An upload beyond the service's limits (bytes, pixels, video size): HTTP 413."""

    exit_code = 3


class RateLimitedError(ReidHubError):
    """Too many heavy requests from one client in a short time: HTTP 429."""

    exit_code = 10
