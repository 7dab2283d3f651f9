"""The exception hierarchy. Every error a user can cause says what is wrong and how to fix it.

The CLI turns a :class:`PrivacyRayError` into one line on stderr and its ``exit_code``; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PrivacyRayError(Exception):
    """Base class for errors caused by input, configuration or environment, not by bugs."""

    exit_code: int = 2


class ConfigError(PrivacyRayError):
    """The configuration file, an environment variable or a flag holds an invalid value."""


class InputError(PrivacyRayError):
    """An input path is missing, unreadable, or in an unsupported format."""


class ModelError(PrivacyRayError):
    """A model directory is missing, corrupted, or was built with incompatible versions."""


class StoreError(PrivacyRayError):
    """A vector store is missing, corrupted, or incompatible with the query-side model."""


class DependencyError(PrivacyRayError):
    """An optional dependency is not installed; the message carries the pip command."""


class QualityGateError(PrivacyRayError):
    """A run-level data-quality check with ``on_fail: fail`` did not pass."""

    exit_code = 3


class ReconciliationError(PrivacyRayError):
    """``input = output + quarantined`` does not hold: rows were lost or duplicated."""

    exit_code = 3
