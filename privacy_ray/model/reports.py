"""Evaluation reports for people: a confusion-matrix PNG and a per-label table."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_evaluation_report(result: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``confusion_matrix.png``, ``per_label.md`` and ``metrics.json`` into ``out_dir``."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = result["confusion_matrix"]["labels"]
    matrix = np.asarray(result["confusion_matrix"]["matrix"])
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"macro-F1 {result['macro_f1']:.3f}, accuracy {result['accuracy']:.3f}, n={result['n']}"
    )
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color)
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=100)
    plt.close(fig)
    rows = ["| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for label, s in result["per_label"].items():
        rows.append(
            f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | "
            f"{s['support']} |"
        )
    (out / "per_label.md").write_text("\n".join(rows) + "\n")
    (out / "metrics.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    return out
