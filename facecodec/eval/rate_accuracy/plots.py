"""The rate-accuracy plot."""

from __future__ import annotations

from pathlib import Path

MARKERS = {"descriptor": "s", "pq": "D", "base_layer": "^", "learned": "*", "image": "o", "pixels": "P"}


def point_label(p: dict) -> str:
    if p["method"] == "pq":
        return f"PQ {p['bytes_per_face']:.0f} B"
    if p["method"] == "pca_int8":
        return "PCA-64+int8"
    if p["family"] in ("base_layer", "learned"):
        return p["setting"]
    return p["method"]


def plot(points: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 6))
    groups: dict[str, list[dict]] = {}
    for p in points:
        groups.setdefault(p["method"], []).append(p)
    colours = plt.get_cmap("tab20").colors
    for n, (method, rows) in enumerate(groups.items()):
        rows = sorted(rows, key=lambda p: p["bytes_per_face"])
        x = [p["bytes_per_face"] for p in rows]
        y = [100 * p["verification_accuracy"] for p in rows]
        family = rows[0]["family"]
        # Image rows and PQ are one method at several settings: join them into a curve.
        line = "-" if family in ("image", "pq") else ""
        ax.plot(x, y, line + MARKERS.get(family, "o"), color=colours[n % len(colours)], label=method,
                markersize=9 if family == "learned" else 5)
        for p, xi, yi in zip(rows, x, y):
            text = p["setting"] if family == "image" else point_label(p)
            ax.annotate(text, (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    f32 = next((p for p in points if p["method"] == "float32"), None)
    if f32 is not None:
        ax.axhline(100 * f32["verification_accuracy"], color="grey", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("bytes per face (log scale)")
    ax.set_ylabel("LFW verification accuracy, folds 6-10, 5-fold CV (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
