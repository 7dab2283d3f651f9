"""Small local tables (labelled data, evaluation files) read into pandas, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from privacy_ray.errors import InputError

TABLE_FORMATS = (".jsonl", ".json", ".csv", ".parquet")


def read_table(path: str | Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a .jsonl, .json, .csv or .parquet file; InputError names what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"file {p} does not exist; pass an existing {'/'.join(TABLE_FORMATS)} file"
        )
    suffix = p.suffix.lower()
    try:
        if suffix == ".jsonl":
            df = pd.read_json(p, lines=True, dtype=False)
        elif suffix == ".json":
            try:
                df = pd.read_json(p, dtype=False)
            except ValueError:
                df = pd.read_json(p, lines=True, dtype=False)
        elif suffix == ".csv":
            df = pd.read_csv(p, dtype=str, keep_default_na=False)
        elif suffix == ".parquet":
            df = pd.read_parquet(p)
        else:
            raise InputError(
                f"unsupported file type {suffix or '(none)'} for {p}; use one of "
                f"{', '.join(TABLE_FORMATS)}"
            )
    except InputError:
        raise
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"cannot read {p}: {first}") from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(
            f"{p} has no column(s) {', '.join(missing)} (found: {', '.join(map(str, df.columns))})"
        )
    return df


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write Parquet or JSON Lines by extension (the generator's outputs)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        df.to_parquet(p, index=False)
    elif suffix in (".jsonl", ".json"):
        df.to_json(p, orient="records", lines=True, date_format="iso", force_ascii=False)
    elif suffix == ".csv":
        df.to_csv(p, index=False)
    else:
        raise InputError(
            f"unsupported output type {suffix or '(none)'} for {p}; use .parquet, .jsonl or .csv"
        )
    return p
