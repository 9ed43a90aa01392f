"""The summary report of a ``label`` run: counts per label, a bar chart, review share,
and the least confident messages. HTML (chart inline as SVG) or Markdown (chart as a
``.svg`` file beside the report)."""
from __future__ import annotations

import html
import re
from pathlib import Path

from . import knowledge
from .artifact import atomic_write

_MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]<>&|~!$])")


def _markdown_text(text: str) -> str:
    """``text`` as plain text in a Markdown table cell: on one line, with every character that
    Markdown or HTML would act on (links, images, tags, entities, emphasis, ``|``) escaped."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", " ".join(text.split()))


def bar_chart_svg(counts: dict[str, int], width: int = 640) -> str:
    """A horizontal bar chart of ``counts`` as a standalone SVG document."""
    items = [(label, n) for label, n in counts.items() if n]
    bar, gap, left = 20, 6, 200
    height = max(1, len(items)) * (bar + gap) + gap
    top = max([n for _, n in items], default=1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">']
    for i, (label, n) in enumerate(items):
        y = gap + i * (bar + gap)
        length = (width - left - 60) * n / top
        name = html.escape(f"{knowledge.info(label).name} {label}")
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{name}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" fill="#4e79a7"/>')
        parts.append(f'<text x="{left + length + 4:.1f}" y="{y + 14}">{n}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _rows(summary) -> list[tuple[str, str, int, str]]:
    total = max(1, summary.labelled)
    return [(label, knowledge.info(label).name, summary.labels[label], f"{summary.labels[label] / total:.1%}")
            for label in knowledge.labels() if summary.labels[label]]


def write_report(summary, path, title: str = "") -> None:
    """Write the report to ``path`` (``.html`` or ``.md``)."""
    path = Path(path)
    counts = {label: summary.labels[label] for label in knowledge.labels()}
    review = summary.needs_review / max(1, summary.labelled)
    skipped = ", ".join(f"{k} {v}" for k, v in summary.skipped.items()) or "无"
    if path.suffix.lower() in (".html", ".htm"):
        table = "".join(f"<tr><td>{label}</td><td>{name}</td><td>{n}</td><td>{share}</td></tr>"
                        for label, name, n, share in _rows(summary))
        least = "".join(f"<tr><td>{line}</td><td>{p:.3f}</td><td>{label}</td><td>{html.escape(text)}</td></tr>"
                        for p, line, text, label in summary.least_confident)
        body = (f"<!doctype html><meta charset='utf-8'><title>标注报告 {html.escape(title)}</title>"
                f"<h1>标注报告 {html.escape(title)}</h1>"
                f"<p>读取 {summary.rows_read} 行，标注 {summary.labelled} 行，跳过：{html.escape(skipped)}。"
                f"需人工复核 {summary.needs_review} 条（{review:.1%}）。</p>"
                f"<h2>各标签数量</h2>{bar_chart_svg(counts)}"
                f"<table border=1 cellpadding=4><tr><th>标签</th><th>名称</th><th>数量</th><th>占比</th></tr>{table}</table>"
                f"<h2>置信度最低的 {len(summary.least_confident)} 条</h2>"
                f"<table border=1 cellpadding=4><tr><th>行</th><th>概率</th><th>标签</th><th>消息</th></tr>{least}</table>")
        atomic_write(path, lambda fh: fh.write(body), mode="w")
        return
    chart = path.with_suffix(".svg")
    atomic_write(chart, lambda fh: fh.write(bar_chart_svg(counts)), mode="w")
    lines = [f"# 标注报告 {_markdown_text(title)}", "",
             f"读取 {summary.rows_read} 行，标注 {summary.labelled} 行，跳过：{_markdown_text(skipped)}。"
             f"需人工复核 {summary.needs_review} 条（{review:.1%}）。", "",
             f"![各标签数量]({chart.name})", "", "| 标签 | 名称 | 数量 | 占比 |", "|---|---|---:|---:|"]
    lines += [f"| {label} | {name} | {n} | {share} |" for label, name, n, share in _rows(summary)]
    lines += ["", f"## 置信度最低的 {len(summary.least_confident)} 条", "", "| 行 | 概率 | 标签 | 消息 |", "|---:|---:|---|---|"]
    lines += [f"| {line} | {p:.3f} | {label} | {_markdown_text(text)} |"
              for p, line, text, label in summary.least_confident]
    atomic_write(path, lambda fh: fh.write("\n".join(lines) + "\n"), mode="w")
