"""Rate-fidelity curves as figures: bpp (log) against PSNR, or against MS-SSIM in dB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facecodec.eval.anchors import HEVC_BITSTREAM
from facecodec.eval.bd_rate import msssim_db


def curve(points: list[dict], method: str) -> list[dict]:
    return [p for p in points if p["method"] == method]



def psnr_of(points: list[dict]) -> list[float]:
    return [p["psnr_db"] for p in points]


def msssim_db_of(points: list[dict]) -> list[float]:
    return msssim_db([p["ms_ssim"] for p in points]).tolist()



PLOT_LABELS = {
    "hevc": "hevc (HEIF file)",
    HEVC_BITSTREAM: "hevc bitstream only (no HEIF boxes)",
    "vvc": "vvc (raw stream)",
}


def plot_curves(points: list[dict], metric: str, path: Path) -> None:
    """bpp (log) against PSNR, or against MS-SSIM in dB with MS-SSIM itself on the right-hand axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    # Near 1, MS-SSIM crowds every codec into a sliver; the dB scale (the one BD-rate uses) spreads it.
    quality = psnr_of if metric == "psnr" else msssim_db_of
    fig, ax = plt.subplots(figsize=(7, 5))
    for method in dict.fromkeys(p["method"] for p in points):
        pts = sorted(curve(points, method), key=lambda p: p["bpp"])
        scalable = method.startswith("scalable-")
        ax.plot(
            [p["bpp"] for p in pts],
            quality(pts),
            marker="o" if scalable else ".",
            linewidth=2 if scalable else 1.2,
            linestyle="--" if method == HEVC_BITSTREAM else "-",
            label=PLOT_LABELS.get(method, method),
        )
        if scalable:
            base = next(i for i, p in enumerate(pts) if p["setting"] == "base-only")
            ax.annotate(
                "base only",
                (pts[base]["bpp"], quality(pts)[base]),
                textcoords="offset points",
                xytext=(6, -10),
                fontsize=8,
            )
    # Log scale: the scalable curve runs from one small base layer to several kB.
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks([0.1, 0.2, 0.5, 1, 2, 5])
    ax.set_xlim(min(p["bpp"] for p in points) / 1.3, max(p["bpp"] for p in points) * 1.3)
    ax.set_xlabel("bits per pixel (112x112 aligned crop, whole file / container)")
    if metric == "psnr":
        ax.set_ylabel("PSNR (dB, RGB)")
    else:
        ax.set_ylabel("MS-SSIM in dB: -10 log10(1 - MS-SSIM)")
        right = ax.secondary_yaxis(
            "right",
            functions=(
                lambda db: 1 - 10 ** (-np.asarray(db) / 10),
                lambda m: -10 * np.log10(np.maximum(1 - np.asarray(m), 1e-12)),
            ),
        )
        right.set_ticks([0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999])
        right.set_ylabel("MS-SSIM (RGB, 7-tap window, 4 scales)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Rate-fidelity ({'PSNR' if metric == 'psnr' else 'MS-SSIM'}), mean over images")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
