"""Property tests: normalisation, prediction and table round trips hold for any input.

The number of examples of each property is fixed in its ``settings``; the shipped model is
loaded once for the module.
"""
import csv
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from classifier import LABELS, load_model
from classifier.batch import LABEL_COLUMNS, LABELLED, Columns, Summary, label_table, output_columns
from classifier.report import defang_links, write_report
from classifier.tabular import FORMULA_START, neutralise, read_table
from classifier.text import normalize

NORMALIZE_EXAMPLES = 3000
PREDICT_EXAMPLES = 1000
TABLE_EXAMPLES = 1000
INJECTION_EXAMPLES = 2000
REPORT_EXAMPLES = 500

MODEL = load_model()

# Text that exercises what the normaliser and the model care about, mixed with any Unicode.
SPECIAL = list("，。！？、…~～=-_*#.,!? \t\n\r\u3000\u200b\ufeff\x00¥￥元块")
PIECES = ["还没发货", "快递丢了", "退款", "七天无理由", "質量太差", "13812345678", "https://t.cn/abc",
          "12345678901234", "¥99.5", "5块钱", "ＡＢＣ１２３", "ORDER", "URL", "😀", "👍🏻", "<b>", "&nbsp;"]
messages = st.one_of(
    st.text(st.characters(blacklist_categories=())),  # any code point, lone surrogates too (a broken escape)
    st.lists(st.one_of(st.sampled_from(PIECES), st.sampled_from(SPECIAL), st.text(max_size=3)),
             max_size=12).map("".join),
)


@settings(max_examples=NORMALIZE_EXAMPLES, deadline=None, database=None)
@given(messages)
@example("0\n元")
@example("0‥0块")
@example("0块0块")
@example("\ud83d 假货\udcff")
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once
    once.encode("utf-8")  # no lone surrogate is left for OpenCC, segmentation or a writer


@settings(max_examples=PREDICT_EXAMPLES, deadline=None, database=None)
@given(messages)
@example("\ud83d 假货\udcff")
def test_prediction_is_a_distribution_and_a_known_label(text):
    (row,) = MODEL.predict_proba([text])
    assert row.shape == (len(MODEL.classes_),)
    assert np.all(np.isfinite(row)) and np.all(row >= 0)
    assert abs(float(row.sum()) - 1) < 1e-4
    (prediction,) = MODEL.classify([text])
    if text.strip():
        assert prediction.label in LABELS and prediction.status in LABELLED
        assert prediction.damaged == any("\ud800" <= ch <= "\udfff" for ch in text)
        assert 0 <= prediction.probability <= 1 and 0 <= prediction.dispute_probability <= 1
        assert prediction.is_dispute == (prediction.label != "other")
    else:
        assert prediction.status == "empty" and prediction.label == "" and not prediction.is_dispute


HEADER_POOL = ["id", "内容", "text", "聊天内容", "备注", "会话ID", "发送方", "role", "时间", "label", "status",
               "评论", "a,b", 'say "hi"', "多\n行", "😀", "column_2"]
CELL_ALPHABET = st.one_of(st.sampled_from(list(',"\n\r\t ;\'“”，。买家卖家还没发货😀🦄')), st.characters(blacklist_categories=("Cs",)))
# Rare large cells: a message of many lines, and one longer than the csv module's default field limit.
LARGE = ["第一行\n" * 60, "\r\n".join(["很长"] * 70), "长" * 140_000]
cells = st.one_of(st.just(""), st.sampled_from(["NaN", "null", "None", "买家", "卖家"]),
                  st.text(CELL_ALPHABET, max_size=12), st.sampled_from(LARGE))


@st.composite
def tables(draw):
    header = draw(st.lists(st.sampled_from(HEADER_POOL), min_size=1, max_size=4, unique=True))
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)), max_size=6))
    text_column = draw(st.sampled_from(header))
    return header, rows, text_column


@settings(max_examples=TABLE_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_label_table_keeps_every_row_in_order(table):
    header, rows, text_column = table
    with tempfile.TemporaryDirectory() as folder:
        src, out = Path(folder) / "in.csv", Path(folder) / "out.csv"
        with open(src, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        summary = label_table(src, out, MODEL, jobs=1, text_column=text_column)
        with open(out, encoding="utf-8-sig", newline="") as fh:
            written = list(csv.reader(fh))
        back = read_table(out)
    assert written[0] == output_columns(header)
    assert [[neutralise(cell) for cell in row] for row in rows] == [row[: len(header)] for row in written[1:]]
    assert back.iloc[:, : len(header)].values.tolist() == rows  # our reader undoes the neutralising prefix
    assert summary.rows_read == len(rows)
    statuses = [row[len(header) + LABEL_COLUMNS.index("status")] for row in written[1:]]
    assert all(s in ("ok", "truncated", "empty", "not_buyer", "ok_decoding_errors") for s in statuses), statuses
    at = header.index(text_column)
    for row, status in zip(rows, statuses):
        if status in ("ok", "truncated"):
            assert row[at].strip()


# Cells a hostile buyer could type: formulas of every kind, and any Unicode (no surrogates; XLSX
# cannot hold control characters, so the XLSX leg uses printable text, spaces and tabs only).
FORMULAS = ['=HYPERLINK("http://x.cn","退款点这里")', "=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "=cmd|' /C calc'!A0",
            "'=1", "==", "-", "@", "+-"]
hostile = st.one_of(st.sampled_from(FORMULAS), st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
                    st.tuples(st.sampled_from(list(FORMULA_START)), st.text(max_size=6)).map("".join))
printable = st.one_of(st.sampled_from([f for f in FORMULAS if "\r" not in f]),  # XML turns \r into \n
                      st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
                              max_size=8),
                      st.tuples(st.sampled_from(list(FORMULA_START[:4])), st.text(
                          st.characters(blacklist_categories=("Cs", "Cc")), max_size=6)).map("".join))


@settings(max_examples=INJECTION_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(hostile, printable), min_size=1, max_size=4),
       st.sampled_from(["csv", "tsv", "xlsx", "jsonl"]))
def test_no_live_formula_in_any_output_and_cells_read_back_unchanged(pairs, fmt):
    from openpyxl import load_workbook

    rows = [[text if fmt != "xlsx" else safe, safe] for text, safe in pairs]
    with tempfile.TemporaryDirectory() as folder:
        src, out = Path(folder) / "in.jsonl", Path(folder) / f"out.{fmt}"
        import json

        src.write_text("".join(json.dumps({"内容": a, "备注": b}, ensure_ascii=False) + "\n" for a, b in rows), "utf-8")
        label_table(src, out, MODEL, jobs=1)
        back = read_table(out)
        assert back[["内容", "备注"]].values.tolist() == rows
        if fmt in ("csv", "tsv"):
            with open(out, encoding="utf-8-sig", newline="") as fh:
                cells = [cell for row in csv.reader(fh, delimiter="\t" if fmt == "tsv" else ",") for cell in row]
            assert not [c for c in cells if c.startswith(FORMULA_START)]
        elif fmt == "xlsx":
            sheet = load_workbook(out).active
            assert not [c.value for row in sheet.iter_rows() for c in row if c.data_type == "f"]


# Buyer text that HTML or Markdown would act on: tags, comments, entities, links, images, code,
# emphasis, table pipes, line breaks.
MARKUP = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<!--", "-->", "</td></tr></table>", "&amp;",
          "&#60;", "&lt;b&gt;", "|", "||", "\\|", "\\", "\n", "\r\n", "\u2028", "\t", "[点这里](http://x.cn)",
          "![p](http://t.cn/p.png)", "<http://x.cn>", "`code`", "```", "*强调*", "__粗__", "~~删~~", "$x$", "# 标题",
          "> 引用", "---", "    缩进", "1. ", "- ", "=HYPERLINK(\"http://x.cn\")", "还没发货",
          "https://evil.example/退款?x=1", "www.evil.cn", "kefu@evil.com", "退款http://t.cn/x"]
marked_up = st.lists(st.one_of(st.sampled_from(MARKUP), st.text(st.characters(blacklist_categories=("Cs",)),
                                                                max_size=6)), min_size=1, max_size=8).map("".join)


class _Cells(HTMLParser):
    """The text of every table cell (tables, rows, cells), and every tag met inside a cell."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.inside: list[str] = []
        self._cell: list[str] | None = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        if self._cell is not None:
            self.inside.append(tag)
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@settings(max_examples=REPORT_EXAMPLES, deadline=None, database=None)
@given(st.lists(marked_up, min_size=1, max_size=4))
def test_report_shows_any_buyer_text_as_plain_text(texts):
    from markdown_it import MarkdownIt

    summary = Summary(Columns("内容"), "utf-8", rows_read=len(texts))
    summary.least_confident = [(0.5, line, text[:200], "other") for line, text in enumerate(texts, 2)]
    with tempfile.TemporaryDirectory() as folder:
        write_report(summary, Path(folder) / "r.html", title="<b>导出</b>.csv")
        write_report(summary, Path(folder) / "r.md", title="<b>导出</b>.csv")
        html_page = (Path(folder) / "r.html").read_bytes().decode("utf-8")  # newlines as written
        markdown = (Path(folder) / "r.md").read_text("utf-8")
    shown = [text[:200] for text in texts]
    page = _Cells(html_page)
    assert page.inside == [] and [row[3] for row in page.tables[-1][1:]] == shown
    rendered = _Cells(MarkdownIt("gfm-like").render(markdown))  # GFM: tables, autolinks (linkify)
    assert rendered.inside == []
    assert [row for row in rendered.tables[-1][1:]] == [  # one row of four cells per message, the text on one line
        [str(line), "0.500", "other", defang_links(" ".join(text.split())).replace("\x00", "\ufffd")]
        for line, text in enumerate(shown, 2)]
