"""Vectorised regex counts over a batch with pyarrow's compute kernels (RE2).

pandas falls back to Python's ``re``, one row at a time, whenever a batch holds a single
non-ASCII character and the pattern uses ``\\b``, ``\\w`` or ``\\s``; support traffic always holds
some (curly quotes, accents, emoji). Calling the kernels directly keeps every count in C++: a
lexicon count costs under a microsecond per message instead of several.

RE2 semantics apply: ``\\b``, ``\\w``, ``\\d`` and ``\\s`` are ASCII; patterns that need Unicode use
``\\pL`` (letters), ``\\p{Lu}`` (uppercase), ``\\pN`` (numbers). No look-around, no backreferences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from privacy_ray.errors import InputError


def as_text(texts: pd.Series) -> pd.Series:
    """A batch of texts as strings: missing values become "" (validation quarantines empties)."""
    if not isinstance(texts, pd.Series):
        msg = f"expected a pandas Series of texts, got {type(texts).__name__}; wrap it in pd.Series"
        raise InputError(msg)
    return texts.fillna("").astype(str)


def to_arrow(texts: pd.Series) -> pa.Array:
    """The texts as an Arrow string array (missing values become "")."""
    values = texts.to_numpy(dtype=object, na_value="")
    return pa.array(values, type=pa.large_string())


def count(arr: pa.Array, pattern: str) -> np.ndarray:
    """Non-overlapping matches of ``pattern`` per string."""
    return pc.count_substring_regex(arr, pattern).to_numpy(zero_copy_only=False).astype(np.int64)


def contains(arr: pa.Array, pattern: str) -> np.ndarray:
    """Whether ``pattern`` matches somewhere in each string."""
    return pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False).astype(bool)


def length(arr: pa.Array) -> np.ndarray:
    """Characters (code points) per string."""
    return pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)


def count_chars(arr: pa.Array, not_class: str) -> np.ndarray:
    """Characters per string outside the character class ``not_class`` (e.g. ``[^\\pL]``).

    Deleting the complement and measuring what is left is one pass, where counting single-char
    matches pays per match.
    """
    return length(pc.replace_substring_regex(arr, not_class + "+", ""))


def lower(arr: pa.Array) -> pa.Array:
    """Unicode lowercase, with curly apostrophes folded to ``'``."""
    return pc.replace_substring(pc.utf8_lower(arr), "\u2019", "'")
