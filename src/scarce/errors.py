"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class ScarceError(Exception):
    """Base class of user-facing errors: bad config, data, checkpoint or arguments."""


class ConfigError(ScarceError):
    """An invalid or inconsistent configuration."""


class DataError(ScarceError):
    """A missing, empty, unreadable or inconsistent dataset."""


class CheckpointError(ScarceError):
    """A missing, corrupt or mismatched checkpoint or run directory."""
