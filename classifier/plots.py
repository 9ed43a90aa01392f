"""Matplotlib figures for the notebooks: label counts, lengths, terms, confusion, F1.

Only the notebooks import this module (the command line never needs matplotlib; install
it with the ``notebooks`` extra). Chinese label names need a CJK font: ``setup_fonts``
looks for one through matplotlib's font manager (see ``CJK_FONTS``; on Debian
``apt-get install fonts-wqy-microhei``). Without one, figures show label ids instead of
Chinese names and a warning says so.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import knowledge

# Family names, in order of preference. WenQuanYi Micro Hei is Debian's smallest CJK font
# package (fonts-wqy-microhei); the others are used when they happen to be installed.
CJK_FONTS = [
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "AR PL UMing CN",
]
# Font files to register with matplotlib when its font cache predates the font's install.
CJK_FILE_HINTS = ("wqy", "notosanscjk", "notosanssc", "sourcehansans", "simhei", "msyh", "pingfang", "uming")


class CJKFontWarning(UserWarning):
    """No CJK font was found: figures use label ids instead of Chinese names."""


def find_cjk_font(candidates=None) -> str | None:
    """The first of ``candidates`` (default ``CJK_FONTS``) that matplotlib can use, else ``None``.

    Fonts installed after matplotlib built its font cache are found by scanning the
    system font folders and registering matching files.
    """
    from matplotlib import font_manager

    candidates = list(CJK_FONTS if candidates is None else candidates)
    known = {font.name for font in font_manager.fontManager.ttflist}
    for name in candidates:
        if name in known:
            return name
    added = False
    for path in font_manager.findSystemFonts():
        stem = Path(path).name.lower().replace("-", "").replace("_", "")
        if any(hint in stem for hint in CJK_FILE_HINTS):
            try:
                font_manager.fontManager.addfont(path)
                added = True
            except (OSError, RuntimeError, ValueError):
                continue
    if added:
        known = {font.name for font in font_manager.fontManager.ttflist}
        for name in candidates:
            if name in known:
                return name
    return None


def setup_fonts(candidates=None) -> str | None:
    """Make matplotlib draw Chinese text; return the font family used, or ``None``.

    With no CJK font, warns (``CJKFontWarning``) and figures fall back to label ids.
    """
    import matplotlib

    font = find_cjk_font(candidates)
    if font is None:
        warnings.warn(
            "no CJK font found for matplotlib, so figures show label ids instead of Chinese names; "
            "install one, e.g. `apt-get install fonts-wqy-microhei` (see notebooks/README.md)",
            CJKFontWarning,
            stacklevel=2,
        )
        return None
    current = [f for f in matplotlib.rcParams["font.sans-serif"] if f != font]
    matplotlib.rcParams["font.sans-serif"] = [font, *current]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False
    return font


@lru_cache(maxsize=1)
def has_cjk() -> bool:
    """Whether this machine has a CJK font matplotlib can use (looked up once per process)."""
    return find_cjk_font() is not None


def label_name(label: str, chinese: bool | None = None) -> str:
    """How a label appears on a figure: ``假冒伪劣 (counterfeit)`` or just the id without a CJK font."""
    chinese = has_cjk() if chinese is None else chinese
    if not chinese:
        return label
    try:
        return f"{knowledge.info(label).name} ({label})"
    except KeyError:
        return label


def _names(labels, chinese: bool | None = None) -> list[str]:
    chinese = has_cjk() if chinese is None else chinese
    return [label_name(lab, chinese) for lab in labels]


def _axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


# -- data overview -----------------------------------------------------------------------------
def label_counts(corpus: pd.DataFrame, ax=None, chinese: bool | None = None):
    """Horizontal bars of messages per label (taxonomy order), stacked by source."""
    fig, ax = _axes(ax, (8, 6))
    table = pd.crosstab(corpus["label"], corpus["source"]).reindex(list(knowledge.labels()), fill_value=0)
    order = [s for s in ("written", "augmented", "reviewed") if s in table.columns]
    table = table[order + [c for c in table.columns if c not in order]]
    y = np.arange(len(table))
    left = np.zeros(len(table))
    for source in table.columns:
        ax.barh(y, table[source], left=left, label=source)
        left += table[source].to_numpy()
    for yi, total in zip(y, left):
        ax.text(total, yi, f" {int(total)}", va="center", fontsize=8)
    ax.set_yticks(y, _names(table.index, chinese))
    ax.invert_yaxis()
    ax.set_xlabel("messages")
    ax.set_title("Messages per label and source")
    ax.legend(title="source", loc="center right")
    return fig


def length_histogram(corpus: pd.DataFrame, ax=None, bins: int = 50, clip: int | None = None):
    """Histogram of message length in characters, one layer per source; ``clip`` caps long ones."""
    fig, ax = _axes(ax, (8, 4))
    lengths = corpus["text"].str.len()
    clip = clip or int(np.percentile(lengths, 99)) + 1
    edges = np.linspace(0, clip, bins + 1)
    for source, group in lengths.groupby(corpus["source"]):
        ax.hist(group.clip(upper=clip), bins=edges, alpha=0.6, label=f"{source} (n={len(group)})")
    ax.axvline(lengths.median(), color="k", linestyle="--", linewidth=1, label=f"median {lengths.median():.0f}")
    ax.set_xlabel(f"characters (capped at {clip})")
    ax.set_ylabel("messages")
    ax.set_title("Message length")
    ax.legend()
    return fig


def length_by_label(corpus: pd.DataFrame, ax=None, chinese: bool | None = None):
    """Box plot of message length per label."""
    fig, ax = _axes(ax, (8, 6))
    order = [lab for lab in knowledge.labels() if lab in set(corpus["label"])]
    lengths = corpus["text"].str.len()
    data = [lengths[corpus["label"] == lab].to_numpy() for lab in order]
    import inspect

    if "orientation" in inspect.signature(ax.boxplot).parameters:  # matplotlib >= 3.10
        ax.boxplot(data, orientation="horizontal", showfliers=False)
    else:
        ax.boxplot(data, vert=False, showfliers=False)
    ax.set_yticks(np.arange(1, len(order) + 1), _names(order, chinese))
    ax.invert_yaxis()
    ax.set_xlabel("characters")
    ax.set_title("Message length per label (without outliers)")
    return fig


def source_counts(corpus: pd.DataFrame, ax=None, column: str = "source"):
    """Bars of messages per value of ``column`` (``source`` or ``file``)."""
    counts = corpus[column].value_counts().sort_values()
    fig, ax = _axes(ax, (8, max(2.5, 0.28 * len(counts) + 1)))
    ax.barh(counts.index.astype(str), counts.to_numpy())
    for i, value in enumerate(counts.to_numpy()):
        ax.text(value, i, f" {value}", va="center", fontsize=8)
    ax.set_xlabel("messages")
    ax.set_title(f"Messages per {column}")
    return fig


def top_terms_grid(table: pd.DataFrame, columns: int = 3, chinese: bool | None = None):
    """Small bar charts of ``analysis.top_terms`` output: one panel per label, bar = score."""
    import matplotlib.pyplot as plt

    labels = [lab for lab in knowledge.labels() if lab in set(table["label"])]
    rows = max(1, -(-len(labels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.6 * rows), layout="constrained", squeeze=False)
    for ax, label in zip(axes.flat, labels):
        part = table[table["label"] == label]
        ax.barh(part["term"], part["score"], color="tab:blue")
        ax.invert_yaxis()
        ax.set_title(label_name(label, has_cjk() if chinese is None else chinese), fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    fig.suptitle("Most typical words per label (z-scored log-odds against the other labels)")
    return fig


# -- evaluation --------------------------------------------------------------------------------
def confusion_heatmap(result: dict, ax=None, normalize: bool = True, chinese: bool | None = None):
    """Heatmap of a score dict's confusion matrix; rows are gold labels, normalised to recall."""
    fig, ax = _axes(ax, (9, 8))
    labels = list(result["labels"])
    matrix = np.asarray(result["confusion"], dtype=float)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    names = _names(labels, chinese)
    ax.set_xticks(np.arange(len(labels)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(labels)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    limit = shown.max() / 2 if shown.size else 0
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                text = f"{shown[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=6,
                        color="white" if shown[i, j] > limit else "black")
    fig.colorbar(image, ax=ax, shrink=0.7, label="share of gold label" if normalize else "messages")
    ax.set_title(f"Confusion matrix (n={int(matrix.sum())})")
    return fig


def f1_bars(result: dict, ax=None, chinese: bool | None = None, title: str | None = None):
    """Per-label F1 bars of a score dict, with the macro-F1 as a line and support in the labels."""
    fig, ax = _axes(ax, (8, 6))
    per_label = result["per_label"]
    order = [lab for lab in knowledge.labels() if lab in per_label]
    f1 = np.array([per_label[lab]["f1"] for lab in order])
    support = [per_label[lab]["support"] for lab in order]
    y = np.arange(len(order))
    colors = ["tab:red" if f < 0.7 else "tab:orange" if f < 0.85 else "tab:green" for f in f1]
    ax.barh(y, f1, color=colors)
    for yi, value in zip(y, f1):
        ax.text(value, yi, f" {value:.2f}", va="center", fontsize=8)
    ax.set_yticks(y, [f"{name}  n={n}" for name, n in zip(_names(order, chinese), support)])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    if "macro_f1" in result:
        ax.axvline(result["macro_f1"], color="k", linestyle="--", linewidth=1,
                   label=f"macro-F1 {result['macro_f1']:.3f}")
        ax.legend(loc="lower right")
    ax.set_xlabel("F1")
    ax.set_title(title or "F1 per label")
    return fig


def f1_delta(comparison: pd.DataFrame, ax=None, chinese: bool | None = None, title: str | None = None):
    """Diverging bars of ``analysis.compare_scores``'s per-label F1 change (green better, red worse)."""
    fig, ax = _axes(ax, (8, 6))
    delta = comparison["delta"].to_numpy(dtype=float)
    y = np.arange(len(comparison))
    colors = np.where(delta > 0, "tab:green", np.where(delta < 0, "tab:red", "tab:gray"))
    ax.barh(y, delta, color=colors)
    for yi, value in zip(y, delta):
        ax.text(value, yi, f" {value:+.3f} " if value >= 0 else f"{value:+.3f} ", va="center",
                ha="left" if value >= 0 else "right", fontsize=8)
    ax.axvline(0, color="k", linewidth=0.8)
    ax.set_yticks(y, _names(comparison.index, chinese))
    ax.invert_yaxis()
    limit = max(0.05, float(np.abs(delta).max()) * 1.35) if len(delta) else 0.05
    ax.set_xlim(-limit, limit)
    ax.set_xlabel("F1 change (new - old)")
    old, new = comparison.attrs.get("macro_f1_old"), comparison.attrs.get("macro_f1_new")
    subtitle = f": macro-F1 {old:.3f} -> {new:.3f}" if old is not None and new is not None else ""
    ax.set_title((title or "F1 change per label") + subtitle)
    return fig


def probability_histogram(oof: pd.DataFrame, ax=None, threshold: float | None = None, bins: int = 20):
    """Histogram of out-of-fold top probabilities, split into right and wrong predictions."""
    fig, ax = _axes(ax, (8, 4))
    edges = np.linspace(0, 1, bins + 1)
    ax.hist(oof.loc[oof["correct"], "probability"], bins=edges, alpha=0.7, label="right")
    ax.hist(oof.loc[~oof["correct"], "probability"], bins=edges, alpha=0.7, label="wrong")
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label=f"threshold {threshold:.2f}")
    ax.set_xlabel("probability of the predicted label")
    ax.set_ylabel("messages")
    ax.set_yscale("log")
    ax.set_title("Confidence of out-of-fold predictions")
    ax.legend()
    return fig


def selection_curve(curve: dict, ax=None, title: str | None = None):
    """Macro-F1 on held-out real text against real labelled messages used, one line per strategy
    (``analysis.selection_curve``)."""
    fig, ax = _axes(ax, (7, 4))
    for strategy in [k for k in ("uncertain", "diverse", "random") if k in curve]:
        ax.plot(curve["sizes"], curve[strategy], marker="o", label=strategy)
    ax.set_xscale("log", base=2)
    ax.set_xticks(curve["sizes"], [f"{s:,}" for s in curve["sizes"]])
    ax.set_xlabel("real labelled messages in training (plus all written ones)")
    ax.set_ylabel("macro-F1, held-out real text")
    ax.set_title(title or f"Choosing what to label (held-out real rows: {curve['test_rows']:,})")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
