"""The evaluate report's human side: the markdown table, the plots and the side-by-side strip.

Works on the report dictionary that `vidrestore.evaluate` writes as metrics.json;
matplotlib (Agg backend, no display needed) draws every PNG.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

#: columns of the methods table: (key in a method's row, header)
COLUMNS = (
    ("psnr", "PSNR dB"), ("ssim", "SSIM"), ("swd", "SWD"), ("sharpness", "sharpness"),
    ("warping_error", "warping error"), ("flicker", "flicker"),
    ("data_consistency_residual", "residual"), ("seconds_per_frame", "s / frame"), ("peak_memory_mb", "peak MB"),
)
PLOTS = {"psnr_per_frame.png": "per-frame PSNR", "warping_error_per_frame.png": "per-frame warping error",
         "quality_vs_time.png": "quality versus time", "swd_per_level.png": "realism (SWD) per pyramid level",
         "realism_vs_psnr.png": "realism versus PSNR"}


def fmt(value) -> str:
    """Numbers as the benchmark tables print them: 3 significant decimals, small values in g-format."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞"
        return f"{value:.4g}" if abs(value) < 1e-2 and value != 0 else f"{value:.3f}" if abs(value) < 10 \
            else f"{value:.2f}"
    return str(value)


def table_columns(report: dict) -> list[tuple[str, str]]:
    """The methods table's columns; tasks where part of the output is not measured add its PSNR."""
    header = report.get("unknown_header")
    extra = [("psnr_unknown", header)] if header else []
    return [COLUMNS[0], *extra, *COLUMNS[1:]]


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def methods_table(report: dict) -> str:
    columns = table_columns(report)
    rows = [[name] + [row.get(key) for key, _ in columns] for name, row in report["methods"].items()]
    return markdown_table(["method"] + [header for _, header in columns], rows)


def index_markdown(report: dict) -> str:
    deg = ", ".join(f"{k} {v}" for k, v in report["degradation"].items())
    lines = [
        f"# vidrestore evaluate: {report['task']}",
        "",
        f"Reference `{report['reference']}`: {report['frames']} frames of {report['width']}x{report['height']} "
        f"at {report['fps']} fps, degraded by `{report['operator']}` ({deg}), rounded to 8 bits"
        + (f", through libx264 at CRF {report['input_crf']}" if report.get("input_crf") is not None else "")
        + f": `{report.get('input', 'input.mkv')}`.",
        "",
        methods_table(report),
        "",
        f"Warping error of the reference itself: {fmt(report['truth_warping_error'])}. Flicker is the warping "
        "error of output − reference (flows from the reference); residual is ‖A x̂ − y‖ / ‖y‖ before 8-bit "
        "rounding. SWD is the sliced Wasserstein distance between the 7x7 patches of the output's and the "
        "reference's Laplacian pyramids (Karras et al. 2018; mean over levels, lower is more realistic: it counts "
        "which patches occur, not where); sharpness is the output's gradient energy over the reference's (below 1: "
        "blurrier). Baselines are timed on their computation alone, solver runs (`none` and diffusion) as whole "
        "pipeline runs (model loading and I/O included); peak MB is the process's peak resident memory during "
        "the method on CPU, peak allocated memory on CUDA. Every number comes from "
        "`runs/<method>/output.mkv.metrics.json` (flicker and the per-frame curves from `metrics.json`).",
        "",
    ]
    notes = [f"- `{name}`: {row['note']}" for name, row in report["methods"].items() if row.get("note")]
    if notes:
        lines += ["How the methods made their results:", "", *notes, ""]
    for name, title in PLOTS.items():
        lines += [f"![{title}]({name})", ""]
    lines += ["Reference, input and every method on the same frames, with zoomed crops:", "", "![strip](strip.png)", "",
              "Restored clips (lossless): " + ", ".join(f"[{n}]({r['output']})" for n, r in report["methods"].items()),
              ""]
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _nan(values) -> list[float]:
    """Curves with gaps: missing or infinite values (identical frames) are not drawn."""
    return [v if v is not None and math.isfinite(v) else math.nan for v in values]


def draw_plots(report: dict, folder: Path) -> None:
    """psnr_per_frame.png, warping_error_per_frame.png and quality_vs_time.png in `folder`."""
    plt = _pyplot()
    methods = report["methods"]
    for filename, key, ylabel, xlabel in (
            ("psnr_per_frame.png", "psnr_per_frame", "PSNR (dB)", "frame"),
            ("warping_error_per_frame.png", "warping_error_per_frame", "warping error", "frame pair (i, i+1)")):
        fig, ax = plt.subplots(figsize=(7.6, 3.6), dpi=80)
        for name, row in methods.items():
            values = _nan(row[key])
            ax.plot(range(len(values)), values, marker=".", label=name)
        if key == "warping_error_per_frame":
            ax.axhline(report["truth_warping_error"], color="black", linestyle="--", label="reference")
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))  # beside the curves, never over them
        fig.tight_layout()
        fig.savefig(folder / filename)
        plt.close(fig)
    _scatter(plt, {name: (max(row["seconds_per_frame"], 1e-4), row["psnr"], row["kind"])
                   for name, row in methods.items()},
             "seconds per frame (log)", "PSNR (dB)", folder / "quality_vs_time.png", log_x=True)
    draw_realism_plots(report, folder)


def _scatter(plt, points: dict[str, tuple], xlabel: str, ylabel: str, path: Path, log_x: bool = False) -> None:
    """One labelled point per method ((x, y, kind); solvers round, baselines square); missing values are left out."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=80)
    for name, (x, y, kind) in points.items():
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        ax.scatter([x], [y], marker="o" if kind == "solver" else "s")
        ax.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_realism_plots(report: dict, folder: Path) -> None:
    """swd_per_level.png (finest level first) and realism_vs_psnr.png (the perception-distortion plane)."""
    plt = _pyplot()
    methods = report["methods"]
    fig, ax = plt.subplots(figsize=(7.6, 3.6), dpi=80)
    for name, row in methods.items():
        values = _nan(row.get("swd_per_level") or [])
        ax.plot(range(len(values)), values, marker=".", label=name)
    ax.set_xlabel("pyramid level (0 = finest)")
    ax.set_ylabel("SWD (lower: more realistic)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(folder / "swd_per_level.png")
    plt.close(fig)
    _scatter(plt, {name: (row.get("psnr"), row.get("swd"), row["kind"]) for name, row in methods.items()},
             "PSNR (dB)", "SWD (lower: more realistic)", folder / "realism_vs_psnr.png")


def strip_frames(n: int, factor: int = 1) -> list[int]:
    """Up to three frames spread over the clip; for interpolation, invented frames only."""
    candidates = [i for i in range(n) if factor == 1 or i % factor] or list(range(n))
    picks = [candidates[0], candidates[len(candidates) // 2], candidates[-1]]
    return sorted(set(picks))


def crop_box(truth: torch.Tensor, unknown: torch.Tensor | None) -> tuple[int, int, int]:
    """(y, x, size) of a square crop: over the hole when there is one, else where the reference has most detail."""
    _, _, h, w = truth.shape
    size = max(8, min(h, w) // 3)
    if unknown is not None and unknown.shape[-2:] == (h, w) and bool((unknown > 0).any()):
        ys, xs = torch.nonzero(unknown.amax(dim=(0, 1)) > 0, as_tuple=True)
        cy, cx = (int(ys.min()) + int(ys.max())) // 2, (int(xs.min()) + int(xs.max())) // 2
        extent = max(int(ys.max() - ys.min()), int(xs.max() - xs.min())) + 1
        size = min(max(size, extent + 8), h, w)  # the whole hole and a little of its border
    else:
        gray = truth.mean(dim=(0, 1))
        energy = gray.diff(dim=0)[:, :-1].abs() + gray.diff(dim=1)[:-1].abs()
        pooled = torch.nn.functional.avg_pool2d(energy[None, None], size, stride=max(1, size // 4))[0, 0]
        iy, ix = divmod(int(pooled.argmax()), pooled.shape[1])
        cy, cx = iy * max(1, size // 4) + size // 2, ix * max(1, size // 4) + size // 2
    y0 = min(max(0, cy - size // 2), h - size)
    x0 = min(max(0, cx - size // 2), w - size)
    return max(0, y0), max(0, x0), min(size, h, w)


def _input_like_output(y: torch.Tensor, factor: int, n: int, h: int, w: int) -> torch.Tensor:
    """The degraded input shown at the output's size and frame count (nearest pixels, nearest earlier frame)."""
    if factor > 1:
        y = y[torch.arange(n) // factor]
    if y.shape[-2:] != (h, w):
        y = torch.nn.functional.interpolate(y, size=(h, w), mode="nearest")
    return y


def draw_strip(truth: torch.Tensor, y: torch.Tensor, outputs: dict[str, torch.Tensor], temporal_factor: int,
               unknown: torch.Tensor | None, path: Path) -> None:
    """Rows: reference, input, each method; per chosen frame the whole frame (crop outlined) and the crop zoomed."""
    plt = _pyplot()
    n, _, h, w = truth.shape
    frames = strip_frames(n, temporal_factor)
    cy, cx, size = crop_box(truth, unknown)
    rows = {"reference": truth, "input": _input_like_output(y, temporal_factor, n, h, w), **outputs}
    panel_w = 1.9
    fig, axes = plt.subplots(len(rows), 2 * len(frames), squeeze=False, dpi=80,
                             figsize=(panel_w * 2 * len(frames), panel_w * max(h / w, 1.0) * len(rows) * 0.9))
    for r, (name, clip) in enumerate(rows.items()):
        for c, f in enumerate(frames):
            image = clip[f].permute(1, 2, 0).clamp(0, 1).numpy().copy()
            crop = image[cy:cy + size, cx:cx + size].copy()
            _outline(image, cy, cx, size)
            for k, (ax, panel) in enumerate(((axes[r][2 * c], image), (axes[r][2 * c + 1], crop))):
                ax.imshow(panel, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"frame {f}" + (" (zoom)" if k else ""), fontsize=8)
        axes[r][0].set_ylabel(name, fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(path)
    plt.close(fig)


def _outline(image: np.ndarray, y0: int, x0: int, size: int) -> None:
    red = np.array([1.0, 0.0, 0.0], dtype=image.dtype)
    y1, x1 = min(y0 + size, image.shape[0]) - 1, min(x0 + size, image.shape[1]) - 1
    image[y0, x0:x1 + 1] = red
    image[y1, x0:x1 + 1] = red
    image[y0:y1 + 1, x0] = red
    image[y0:y1 + 1, x1] = red
