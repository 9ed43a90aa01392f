"""The summary report of a ``label`` run, in Chinese: what was read and labelled, disputes and messages
to review, skipped rows by reason, messages and conversations per label (with a bar chart), and the least
confident messages. HTML (chart inline as SVG) or Markdown (chart as a ``.svg`` file beside the report).

Buyer text is shown as text: HTML-escaped, or in Markdown on one line with links defanged and every active
character escaped.
"""
from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

from . import knowledge
from .artifact import atomic_write

_MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]<>&|~!$])")
_LINK_STARTS = (  # what Markdown renderers turn into links by themselves (GFM autolinks), made inert
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*):(?=//)"), r"\1[:]"),   # https://x  ->  https[:]//x
    (re.compile(r"(?i)(www)\."), r"\1[.]"),                         # www.x      ->  www[.]x
    (re.compile(r"(?<=[\w.+-])@(?=[\w-]+\.)"), "[@]"),              # a@b.c      ->  a[@]b.c
)
SKIP_REASONS = {"empty": "空消息", "not_buyer": "非买家消息（卖家、系统）", "error": "无法解析的行（引号不配对、列数不对等）"}


def defang_links(text: str) -> str:
    """``text`` with URL schemes, ``www.`` and e-mail ``@`` bracketed, so that no renderer links them."""
    for pattern, replacement in _LINK_STARTS:
        text = pattern.sub(replacement, text)
    return text


def _markdown_text(text: str) -> str:
    """``text`` as plain text in a Markdown table cell: on one line, links defanged, and every
    character that Markdown or HTML would act on (links, images, tags, entities, emphasis, ``|``) escaped."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", defang_links(" ".join(str(text).split())))


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


def skipped_by_reason(statuses: Counter) -> list[tuple[str, int]]:
    """Rows not labelled, by reason in Chinese; the ``error:…`` statuses are counted together."""
    counts: Counter = Counter()
    for status, n in statuses.items():
        key = "error" if status.startswith("error:") else status
        if key in SKIP_REASONS:
            counts[SKIP_REASONS[key]] += n
    return sorted(counts.items(), key=lambda item: -item[1])


def _per_label(counts: Counter) -> list[tuple[str, str, int, str]]:
    total = max(1, sum(counts.values()))
    return [(label, knowledge.info(label).name, counts[label], f"{counts[label] / total:.1%}")
            for label in knowledge.labels() if counts[label]]


def _sections(summary) -> list[tuple[str, str, list[str], list[list]]]:
    """The report as (heading, paragraph or ``CHART``, table header, table rows) sections."""
    labelled = max(1, summary.labelled)
    buyers = summary.labelled + summary.statuses["empty"]
    damaged = summary.damaged
    lead = (f"读取 {summary.rows_read} 行，其中买家消息 {buyers} 条；已标注 {summary.labelled} 条，"
            f"其中纠纷 {summary.disputes} 条（{summary.disputes / labelled:.1%}），"
            f"需人工复核 {summary.needs_review} 条（{summary.needs_review / labelled:.1%}）。"
            + (f"有 {damaged} 条消息含无法识别的字节（乱码），已按替换后的文本标注。" if damaged else ""))
    sections = [("", lead, [], [])]
    skipped = skipped_by_reason(summary.statuses)
    if skipped:
        sections.append(("未标注的行", "", ["原因", "行数"], [[reason, n] for reason, n in skipped]))
    sections.append(("各标签消息数", "CHART", ["标签", "名称", "消息数", "占比"],
                     [list(row) for row in _per_label(summary.labels)]))
    if summary.conversations:
        disputes = sum(n for label, n in summary.conversation_labels.items() if label != "other")
        sections.append(("按会话", f"共 {summary.conversations} 个会话，其中 {disputes} 个有纠纷（取会话中最严重的一类）。",
                         ["标签", "名称", "会话数", "占比"],
                         [list(row) for row in _per_label(summary.conversation_labels)]))
    sections.append((f"置信度最低的 {len(summary.least_confident)} 条", "", ["行", "概率", "标签", "消息"],
                     [[line, f"{p:.3f}", label, text] for p, line, text, label in summary.least_confident]))
    return sections


def write_report(summary, path, title: str = "") -> None:
    """Write the report to ``path`` (``.html`` or ``.md``)."""
    path = Path(path)
    chart = bar_chart_svg({label: summary.labels[label] for label in knowledge.labels()})
    sections = _sections(summary)
    if path.suffix.lower() in (".html", ".htm"):
        parts = [f"<!doctype html><meta charset='utf-8'><title>标注报告 {html.escape(title)}</title>",
                 f"<h1>标注报告 {html.escape(title)}</h1>"]
        for heading, text, header, rows in sections:
            parts.append(f"<h2>{heading}</h2>" if heading else "")
            parts.append(chart if text == "CHART" else f"<p>{html.escape(text)}</p>" if text else "")
            if header:
                cells = "".join(f"<th>{h}</th>" for h in header)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
                parts.append(f"<table border=1 cellpadding=4><tr>{cells}</tr>{body}</table>")
        atomic_write(path, lambda fh: fh.write("".join(parts)), mode="w")
        return
    svg = path.with_suffix(".svg")
    atomic_write(svg, lambda fh: fh.write(chart), mode="w")
    lines = [f"# 标注报告 {_markdown_text(title)}", ""]
    for heading, text, header, rows in sections:
        if heading:
            lines += [f"## {heading}", ""]
        if text:
            lines += [f"![各标签消息数]({svg.name})" if text == "CHART" else text, ""]
        if header:
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_markdown_text(c) for c in row) + " |" for row in rows]
            lines.append("")
    atomic_write(path, lambda fh: fh.write("\n".join(lines)), mode="w")
