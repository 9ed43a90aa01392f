"""The ``complaint-classifier`` command: argument parsing and printing only.

Every command calls the library (``classifier``); nothing here decides a label.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
from functools import partial
from pathlib import Path

PROG = "complaint-classifier"
OUTPUT_FORMATS = ["csv", "tsv", "xlsx", "jsonl", "parquet"]
REPORT_SUFFIXES = (".html", ".htm", ".md")


class UsageError(Exception):
    """A command-line mistake worth one clear line."""


class Terminated(Exception):
    """SIGTERM arrived (a scheduler or ``docker stop``)."""


# -- argument types ----------------------------------------------------------------------------------
def _date(value: str) -> dt.date:
    for pattern in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d"):
        try:
            return dt.datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"不是日期（写成 2026-11-20、2026/11/20 或 20261120）：{value!r}")


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"不是整数：{value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"至少为 1：{value}")
    return number


def _probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"不是数字：{value!r}") from None
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"必须在 0 到 1 之间：{value}")
    return number


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", help="模型文件（.npz）；默认用随软件发布的模型")
    parser.add_argument("--trust", action="store_true", help="允许加载项目 models 文件夹以外的模型（确认来源可靠时才用）")


def _table_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-column", metavar="COL", help="消息文本所在的列（默认自动识别）")
    parser.add_argument("--role-column", metavar="COL", help="发送方所在的列（默认自动识别）")
    parser.add_argument("--buyer-value", action="append", metavar="VALUE",
                        help="发送方列中表示买家的值（可重复；默认 买家、客户、buyer 等）")
    parser.add_argument("--seller-value", action="append", metavar="VALUE",
                        help="发送方列中表示卖家/客服的值（可重复）；给出后，其余发送方都算买家，适合发送方列是昵称的导出")
    parser.add_argument("--input-format", choices=OUTPUT_FORMATS, help="输入格式（默认按扩展名）")
    parser.add_argument("--encoding", help="输入编码（默认在 UTF-8、带 BOM 的 UTF-8、GB18030 中自动识别）")
    parser.add_argument("--sheet", help="XLSX 的工作表名（默认第一个）")
    parser.add_argument("--header-row", type=_positive, metavar="N",
                        help="表头所在行（从 1 数；默认取前 10 行中第一个含已知列名的行）")


class _HelpFormatter(argparse.HelpFormatter):
    def add_usage(self, usage, actions, groups, prefix=None):
        return super().add_usage(usage, actions, groups, "用法：" if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help is in Chinese throughout (headings and ``-h`` too)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, add_help=False, formatter_class=_HelpFormatter, **kwargs)
        self._positionals.title = "参数"
        self._optionals.title = "选项"
        self.add_argument("-h", "--help", action="help", help="显示本帮助并退出")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog=PROG, description="给买家消息打上纠纷标签，并给出对应的平台规则和处理建议。")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}", help="显示版本并退出")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="命令")

    p = sub.add_parser("predict", help="给一条或多条消息打标签", description="给一条或多条消息打标签，显示规则和处理建议。")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="消息；写 '-' 或不写则从标准输入每行读一条")
    p.add_argument("--json", action="store_true", help="每条消息输出一个 JSON 对象")
    p.add_argument("-k", "--top", type=_positive, default=3, help="列出几个候选标签（默认 3）")
    p.add_argument("--threshold", type=_probability, help="概率低于此值时需人工复核（0 到 1；默认用模型的）")
    p.add_argument("--order-date", type=_date, metavar="DATE", help="买家拍下的日期，用于计算投诉期限")
    p.add_argument("--trade-success-date", type=_date, metavar="DATE", help="交易成功的日期，用于计算投诉期限")
    p.add_argument("--trade-closed-date", type=_date, metavar="DATE", help="交易关闭的日期，用于计算投诉期限")
    p.add_argument("--today", type=_date, metavar="DATE", help="从这一天算期限（默认今天）")
    _model_options(p)

    p = sub.add_parser("label", help="给 CSV / TSV / XLSX / JSONL / Parquet 文件的每一行打标签",
                       description="给导出文件的每一行打标签：原有列和行序不变，一行都不丢，另加标签、概率、规则、建议和状态列。")
    p.add_argument("input", help="输入文件（--engine dask 时可以是文件夹或通配符）")
    p.add_argument("-o", "--output", required=True,
                   help="输出文件（'-' 表示把 CSV 写到标准输出；--engine dask 时是输出文件夹）")
    _table_options(p)
    p.add_argument("--conversation-column", metavar="COL", help="会话 ID 所在的列（默认自动识别）")
    p.add_argument("--by-conversation", action="store_true",
                   help="另外给每个会话一个标签（按纠纷严重程度取最严重的一条，列出其他纠纷）；写到 OUTPUT.conversations.*。"
                        "--engine dask 时写到 OUTDIR/_conversations/，代价是一次按会话 ID 的 shuffle：所有分片标完后才开始，"
                        "每条已标注的买家消息（连同前 200 字）在 worker 之间传一次，并在集群内存中留到会话结果写完")
    p.add_argument("--conversations", metavar="PATH", help="会话结果文件（默认在 OUTPUT 扩展名前加 .conversations）")
    p.add_argument("--format", choices=OUTPUT_FORMATS, help="输出格式（默认按扩展名）")
    p.add_argument("--jobs", type=_positive, help="使用的进程数（默认全部 CPU 核；--engine dask 时是本机集群的 worker 进程数）")
    p.add_argument("--max-chars", type=_positive, help="每条消息最多用多少字打标签（默认用模型的，2000）")
    p.add_argument("--threshold", type=_probability, help="概率低于此值时需人工复核（0 到 1；默认用模型的）")
    p.add_argument("--redact", action="store_true", help="在文本列中遮盖手机号、身份证号、邮箱、地址和收件人姓名")
    p.add_argument("--raw-cells", action="store_true",
                   help="CSV/TSV 中以 = + - @ 开头的单元格不加 ' 前缀（给程序读；用 Excel 打开不安全）")
    p.add_argument("--report", metavar="PATH", help="另写一份汇总报告（.html 或 .md）")
    p.add_argument("--engine", choices=["local", "dask"], default="local",
                   help="local：本机多进程（默认）；dask：在 Dask 集群上按文件分片处理，每个输入分片写一个输出分片，"
                        "另写 OUTDIR/_manifest.json（需 pip install \".[dask]\"）")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="--engine dask 时连接的 Dask 调度器地址，如 tcp://10.0.0.5:8786（默认在本机起一个集群）；"
                        "每个 worker 都要能在同一路径读到输入、输出和 --model 文件")
    p.add_argument("-q", "--quiet", action="store_true", help="不显示进度条和汇总")
    _model_options(p)

    p = sub.add_parser("sample", help="挑出最值得人工标注的消息，写成复核表",
                       description="从导出文件中挑出 N 条最能帮模型进步的买家消息（模型最拿不准的、分布开的），"
                                   "写成带空 correct_label 列的复核表；填好后用 train --extra 直接训练。")
    p.add_argument("input", help="输入文件")
    p.add_argument("-n", type=_positive, required=True, help="挑多少条")
    p.add_argument("-o", "--output", required=True, help="复核表（.csv / .xlsx / .tsv / .jsonl）")
    p.add_argument("--strategy", choices=["uncertain", "diverse", "random"], default="uncertain",
                   help="uncertain：模型最拿不准的（默认）；diverse：每个预测标签各挑一些；random：随机")
    p.add_argument("--seed", type=int, default=0, help="随机种子（默认 0）")
    _table_options(p)
    _model_options(p)

    p = sub.add_parser("train", help="用训练数据训练新模型",
                       description="交叉验证、校准概率、选定阈值，然后用全部数据训练，写出新模型（不会覆盖已有模型，除非 --force）。")
    p.add_argument("--data", nargs="+", metavar="PATH", help="训练用 CSV 文件或文件夹（默认 data/messages 和 data/real）")
    p.add_argument("--extra", nargs="+", default=[], metavar="PATH",
                   help="复核表：correct_label 已填的行加入训练（label 或 sample 的输出填好后可直接用）")
    p.add_argument("-o", "--output", help="写出的模型文件（默认 models/model-日期-时间.npz）")
    p.add_argument("--force", action="store_true", help="允许覆盖已有的模型文件")
    p.add_argument("--seed", type=int, default=0, help="交叉验证分折的随机种子（默认 0）")
    p.add_argument("--cv-folds", type=int, default=5,
                   help="交叉验证折数（默认 5）；0 表示跳过：不校准，阈值保持默认（复核 0.8，纠纷 0.5）")
    p.add_argument("--real-weight", type=float, help="真实买家文本相对我们编写的数据的权重（默认用记录的最佳值）")
    p.add_argument("--jobs", type=_positive, help="交叉验证用的进程数（默认全部 CPU 核）")
    p.add_argument("--dev", metavar="TABLE", help="另外在一个已标注的真实文本集上打分，并记进模型信息")

    p = sub.add_parser("evaluate", help="在已标注的表上给模型打分",
                       description="在已标注的表上打分：主指标是 macro-F1（只算金标准不少于 5 条的标签），另有准确率、各标签 F1 和混淆矩阵。")
    p.add_argument("data", help="已标注的表（任何 label 能读的格式）")
    p.add_argument("--json", action="store_true", help="以 JSON 输出")
    p.add_argument("--text-column", metavar="COL", help="文本列（默认自动识别）")
    p.add_argument("--label-column", metavar="COL", help="金标准标签列（默认 correct_label 或 label）")
    _model_options(p)

    p = sub.add_parser("rules", help="查看某类纠纷的规则、扣分、期限和处理建议")
    p.add_argument("label", nargs="?", help="标签 id 或中文名，如 late_shipment 或 延迟发货（默认全部）")

    p = sub.add_parser("info", help="查看模型的信息（训练数据、准确率、版本）")
    p.add_argument("--json", action="store_true", help="以 JSON 输出")
    _model_options(p)
    return parser


def _load(args):
    from .artifact import load

    model = load(args.model, trust=args.trust)
    if getattr(args, "threshold", None) is not None:
        model.set_params(review_threshold=args.threshold)
    return model


def _check_outputs(*paths, inputs=()) -> None:
    """Fail before any work when an output cannot be written, would replace an input, or is named twice.

    A Markdown report also writes its chart beside it (``report.svg``): that file is checked too.
    """
    from .tabular import check_writable

    outputs = [p for p in paths if p and p != "-"]
    outputs += [Path(p).with_suffix(".svg") for p in outputs if Path(p).suffix.lower() == ".md"]
    resolved = {Path(p).resolve() for p in inputs if p}
    seen = {}
    for path in outputs:
        target = Path(path).resolve()
        if target in resolved:
            raise UsageError(f"output {path} is the input file: write to another name")
        if target in seen:
            raise UsageError(f"{seen[target]} and {path} name the same file: give each output its own name")
        seen[target] = path
        check_writable(path)


# -- predict -----------------------------------------------------------------------------------------
def _read_messages(args) -> list[str]:
    """The messages to label; bytes that are not valid in the terminal's encoding (in arguments as in
    stdin) come as lone surrogates, which ``classify`` reports and the output shows as U+FFFD."""
    if args.texts and args.texts != ["-"]:
        return args.texts
    if not args.texts and sys.stdin.isatty():
        raise UsageError("give a message, or pipe messages in one per line (TEXT '-')")
    if hasattr(sys.stdin, "reconfigure"):  # a real text stream (not a StringIO handed in by a caller)
        sys.stdin.reconfigure(errors="surrogateescape")
    return [line.rstrip("\r\n") for line in sys.stdin]


def cmd_predict(args) -> int:
    from . import knowledge
    from .text import repair

    model = _load(args)
    texts = _read_messages(args)
    dates = dict(order_placed=args.order_date, trade_success=args.trade_success_date,
                 trade_closed=args.trade_closed_date, today=args.today)
    for text, prediction in zip(texts, model.classify(texts, k=args.top)):
        text = repair(text)[0]
        deadline = knowledge.complaint_deadline(prediction.label, **dates) if prediction.label else None
        if args.json:
            record = {"text": text, **prediction.to_dict()}
            if deadline:
                record.update(complaint_deadline=deadline.describe(), complaint_open=deadline.is_open,
                              last_day=deadline.last_day.isoformat() if deadline.last_day else None)
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            print(_format_prediction(text, prediction, deadline, model.max_chars), flush=True)
    return 0


def _format_prediction(text, prediction, deadline, max_chars: int) -> str:
    from . import knowledge
    from .decision import REVIEW_REASONS

    shown = text if len(text) <= 80 else text[:80] + "…"
    if prediction.status == "empty":
        return f"消息：{shown or '（空）'}\n  状态：空消息，未打标签"
    entry = knowledge.info(prediction.label)
    top = " | ".join(f"{knowledge.info(label).name} {p:.2f}" for label, p in prediction.top)
    lines = [f"消息：{shown}",
             f"  标签：{prediction.label}（{prediction.name}）  概率 {prediction.probability:.2f}  "
             f"纠纷概率 {prediction.dispute_probability:.2f}（{'是纠纷' if prediction.is_dispute else '非纠纷'}）"]
    if prediction.needs_review:
        reasons = "；".join(REVIEW_REASONS[r] for r in prediction.review_reasons)
        lines.append(f"  ⚠ 需人工复核：{reasons}")
    if prediction.truncated:
        lines.append(f"  注意：消息有 {len(text)} 字，只用了前 {max_chars} 字打标签")
    if prediction.damaged:
        lines.append("  注意：消息中有无法识别的字节，已换成 \ufffd，按替换后的文本打标签")
    lines += [f"  候选：{top}", f"  依据词：{'、'.join(prediction.top_terms) or '（无）'}",
              f"  严重程度：{entry.severity_name}"]
    if entry.has_rule:
        lines.append(f"  规则：{entry.rule}")
    if not entry.penalty.startswith(knowledge.NOT_STATED) and entry.penalty != "不适用":
        lines.append(f"  处罚：{entry.penalty}")
    if prediction.label != "other":
        lines += [f"  投诉期限：{deadline.describe()}", f"  举证期限：{entry.evidence_window}"]
        if entry.article87:
            lines.append(f"  注意：{entry.article87}")
    basis = "（通用做法，平台规则未涉及）" if entry.advice_basis == "general" else ""
    lines.append(f"  处理建议{basis}：")
    lines += [f"    {i}. {step}" for i, step in enumerate(entry.advice, 1)]
    return "\n".join(lines)


# -- label -------------------------------------------------------------------------------------------
def cmd_label(args) -> int:
    if args.engine == "dask":
        return _label_on_dask(args)
    from .batch import WorkerError, label_table
    from .tabular import table_format

    conversations = None
    if args.by_conversation:
        conversations = args.conversations or _sibling(args.output, "conversations")
    if args.output == "-" and (args.format in ("xlsx", "parquet")):
        raise UsageError(f"{args.format} cannot be written to stdout: give an output file name with -o")
    if args.output != "-":
        table_format(args.output, args.format)
    if args.report and Path(args.report).suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(f"report {args.report}: use a .html or .md file name")
    _check_outputs(args.output, args.report, conversations, inputs=[args.input])
    model = _load(args)
    show = not args.quiet
    done = [0]
    bar = _progress_bar(args.input) if show and sys.stderr.isatty() else None

    def progress(rows: int) -> None:
        done[0] += rows
        if bar is not None:
            bar.update(rows)

    def on_columns(columns):
        if show:  # above the progress bar, not into it
            _print_columns(columns, partial(print if bar is None else bar.write, file=sys.stderr))

    where = "stdout" if args.output == "-" else args.output
    # a file appears only when complete; stdout has had every finished chunk
    kept = "the output on stdout is incomplete" if args.output == "-" else f"nothing written to {args.output}"
    started, wall_start = time.perf_counter(), time.time()
    try:
        summary = label_table(
            args.input, args.output, model,
            text_column=args.text_column, role_column=args.role_column, buyer_values=args.buyer_value,
            seller_values=args.seller_value, conversation_column=args.conversation_column,
            by_conversation=args.by_conversation, conversation_output=conversations,
            input_format=args.input_format, output_format=args.format, encoding=args.encoding, sheet=args.sheet,
            header_row=args.header_row, jobs=args.jobs, max_chars=args.max_chars, redact=args.redact,
            raw_cells=args.raw_cells, progress=progress, on_columns=on_columns,
        )
    except (KeyboardInterrupt, Terminated, WorkerError, BrokenPipeError) as exc:
        if bar is not None:
            bar.close()
        if isinstance(exc, BrokenPipeError):
            raise  # stdout's reader has gone (``| head``): main ends the run quietly
        if isinstance(exc, WorkerError):
            print(f"{PROG}: error: {exc} after {done[0]} rows; {kept}", file=sys.stderr)
            return 1
        if args.output != "-" and os.path.exists(args.output) and os.path.getmtime(args.output) >= wall_start:
            kept = f"{args.output} was written, {conversations} was not"  # stopped while writing the conversations
        print(f"interrupted after {done[0]} rows; {kept}", file=sys.stderr)
        raise
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    if args.report:
        from .report import write_report

        try:
            write_report(summary, args.report, title=Path(args.input).name)
        except OSError as exc:
            raise UsageError(f"cannot write the report {args.report}: {exc.strerror or exc}; "
                             f"the labels were written to {where}") from None
    if show:
        _print_summary(args, summary, seconds, conversations)
    return 0


def _print_columns(columns, say=None) -> None:
    from .batch import LABEL_COLUMNS

    say = say or partial(print, file=sys.stderr)
    used = [f"text={columns.text}", f"role={columns.role or '-'}",
            f"conversation={columns.conversation or '-'}", f"time={columns.time or '-'}"]
    say("columns: " + ", ".join(used))
    if columns.role is None:
        say("note: no sender column found, so every row is treated as a buyer message; "
            "name it with --role-column if the export has one")
    elif columns.nicknames:
        say(f"note: the sender column {columns.role!r} holds names, not roles: senders such as 客服, 商家 or "
            "names with 旗舰店 / 专营店 / 官方 / 店名:客服名 are taken as the shop, all others as buyers "
            "(set --seller-value or --buyer-value to say otherwise)")
    for name in set(columns.header) & set(LABEL_COLUMNS):
        say(f"note: input column {name!r} is kept as 'input_{name}' in the output")


def _print_summary(args, summary, seconds: float, conversations) -> None:
    skipped = ", ".join(f"{k} {v}" for k, v in summary.skipped.items()) or "none"
    buyers = summary.labelled + summary.statuses["empty"]
    print(f"rows read {summary.rows_read}, treated as buyer {buyers}, labelled {summary.labelled} "
          f"(disputes {summary.disputes}, truncated {summary.truncated}), skipped: {skipped}; "
          f"needs review {summary.needs_review}; {seconds:.1f}s", file=sys.stderr)
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    if summary.damaged:
        print(f"note: {summary.damaged} row(s) held bytes that are not valid {summary.encoding or 'UTF-8'}; they "
              "were labelled from the damaged text (status ok_decoding_errors or truncated_decoding_errors); "
              "pass --encoding if the file is in another encoding", file=sys.stderr)
    if conversations:
        print(f"conversations labelled {summary.conversations} -> {conversations}", file=sys.stderr)
        if summary.without_conversation:
            print(f"note: {summary.without_conversation} labelled message(s) have no conversation id and are in "
                  "no conversation", file=sys.stderr)
    print(f"wrote {args.output}" + (f" and {args.report}" if args.report else ""), file=sys.stderr)
    if not args.encoding and summary.encoding not in (None, "utf-8", "utf-8-sig", "gb18030"):
        print(f"note: {args.input} was read as {summary.encoding} (a guess); pass --encoding if the text looks wrong",
              file=sys.stderr)


def _label_on_dask(args) -> int:
    if args.output == "-":
        raise UsageError("--engine dask writes a folder of parts: give an output folder with -o")
    if args.report or args.conversations:
        flag = "--report" if args.report else "--conversations"
        raise UsageError(f"{flag} is not available with --engine dask: the counts are in OUTDIR/_manifest.json "
                         "and the conversations in OUTDIR/_conversations/")
    if args.scheduler and args.jobs:
        raise UsageError("--jobs sets the size of a local cluster: with --scheduler the cluster's own workers are used")
    try:
        from .distributed import ClusterError, label_parts
    except ImportError as exc:
        raise UsageError(f"--engine dask needs Dask ({exc.name} is not installed): pip install \".[dask]\"") from None
    show = not args.quiet
    try:
        manifest = label_parts(
            args.input, args.output, model_path=args.model, trust=args.trust, scheduler=args.scheduler,
            jobs=args.jobs, text_column=args.text_column, role_column=args.role_column,
            buyer_values=args.buyer_value, seller_values=args.seller_value,
            conversation_column=args.conversation_column, by_conversation=args.by_conversation,
            input_format=args.input_format, output_format=args.format, encoding=args.encoding, sheet=args.sheet,
            header_row=args.header_row, max_chars=args.max_chars, redact=args.redact, raw_cells=args.raw_cells,
            threshold=args.threshold, progress=show and sys.stderr.isatty(),
            log=(lambda line: print(line, file=sys.stderr)) if show else None,
            on_columns=_print_columns if show else None,
        )
    except ClusterError as exc:
        raise UsageError(str(exc)) from None
    except (KeyboardInterrupt, Terminated):
        print(f"interrupted: the parts written so far are complete, but {args.output} has no _manifest.json",
              file=sys.stderr)
        raise
    if show:
        from .batch import LABELLED

        skipped = ", ".join(f"{k} {v}" for k, v in manifest["statuses"].items() if k not in LABELLED) or "none"
        print(f"parts {len(manifest['parts'])} (failed {len(manifest['failed'])}), rows read {manifest['rows_read']}, "
              f"labelled {manifest['labelled']}, skipped: {skipped}; {manifest['seconds']:.1f}s", file=sys.stderr)
        for part in manifest["parts"]:
            for note in part.get("notes", []):
                print(f"note: {part['input']}: {note}", file=sys.stderr)
        conversations = manifest.get("conversations", {})
        if "conversations" in conversations:
            print(f"conversations labelled {conversations['conversations']} -> "
                  f"{os.path.join(args.output, conversations['folder'])}", file=sys.stderr)
            if conversations["without_conversation"]:
                print(f"note: {conversations['without_conversation']} labelled message(s) have no conversation id "
                      "and are in no conversation", file=sys.stderr)
        print(f"wrote {args.output} (manifest {os.path.join(args.output, '_manifest.json')})", file=sys.stderr)
    return 1 if manifest["failed"] or "error" in manifest.get("conversations", {}) else 0


def _sibling(path: str, tag: str) -> str:
    if path == "-":
        raise UsageError("--by-conversation with output '-' needs --conversations PATH")
    p = Path(path)
    return str(p.with_name(f"{p.stem}.{tag}{p.suffix}"))


def _progress_bar(path: str):
    from tqdm import tqdm

    return tqdm(total=_estimate_rows(path), unit=" rows", file=sys.stderr, smoothing=0.1, dynamic_ncols=True)


def _estimate_rows(path: str) -> int | None:
    """Lines in a text file less its header (an estimate: a quoted field may span lines); None otherwise."""
    if Path(path).suffix.lower() not in (".csv", ".tsv", ".jsonl", ".ndjson"):
        return None
    try:
        with open(path, "rb") as fh:
            lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return None
    return max(lines - (0 if path.lower().endswith((".jsonl", ".ndjson")) else 1), 0)


# -- sample ------------------------------------------------------------------------------------------
def cmd_sample(args) -> int:
    from .sampling import sample_table

    _check_outputs(args.output, inputs=[args.input])
    model = _load(args)
    result = sample_table(args.input, args.output, model, args.n, strategy=args.strategy, seed=args.seed,
                          text_column=args.text_column, role_column=args.role_column, buyer_values=args.buyer_value,
                          seller_values=args.seller_value, input_format=args.input_format, encoding=args.encoding,
                          sheet=args.sheet, header_row=args.header_row)
    print(f"{result['candidates']} buyer messages scored, {result['chosen']} chosen ({args.strategy}); "
          f"wrote {args.output}: fill in correct_label, then `{PROG} train --extra {args.output}`", file=sys.stderr)
    return 0


# -- train / evaluate --------------------------------------------------------------------------------
def cmd_train(args) -> int:
    import pandas as pd

    from .artifact import models_dir, save
    from .training import (DEFAULT_REAL_WEIGHT, brief, default_data_paths, evaluate_file, load_corpus, load_reviewed,
                           train)

    output = args.output or str(models_dir() / f"model-{dt.datetime.now():%Y%m%d-%H%M%S}.npz")
    if Path(output).suffix != ".npz":
        raise UsageError(f"model files end in .npz: {output}")
    if Path(output).exists() and not args.force:
        raise UsageError(f"{output} exists: pass --force to replace it, or choose another name with -o")
    _check_outputs(output, str(Path(output).with_suffix(".json")))
    if args.cv_folds < 0 or args.cv_folds == 1:
        raise UsageError(f"--cv-folds must be 0 (skip) or at least 2, got {args.cv_folds}")
    extras = [load_reviewed(path) for path in args.extra]
    for path, extra in zip(args.extra, extras):
        if extra.empty:
            raise UsageError(f"{path}: no row has a correct_label yet: fill in the labels you checked, then train")
    corpus = load_corpus(args.data or default_data_paths())
    if extras:
        corpus = pd.concat([corpus, *extras], ignore_index=True)
    real_weight = DEFAULT_REAL_WEIGHT if args.real_weight is None else args.real_weight
    print(f"training on {len(corpus)} messages ({int((corpus['source'] == 'real').sum())} real, "
          f"{sum(map(len, extras))} reviewed; real rows weigh {real_weight})", file=sys.stderr)
    if args.cv_folds == 0:
        print("note: no cross-validation: probabilities are not calibrated and the thresholds keep their defaults "
              "(needs review below 0.8, dispute from 0.5)", file=sys.stderr)

    def progress(done: int, folds: int, seconds: float) -> None:
        print(f"cross-validation: fold {done}/{folds} done ({seconds:.0f}s)", file=sys.stderr)

    model, metadata = train(corpus, cv_folds=args.cv_folds, seed=args.seed, real_weight=real_weight,
                            jobs=args.jobs, progress=progress)
    if extras:
        metadata["reviewed_added"] = [
            {"file": str(path), "rows": len(frame), "labels": frame["label"].value_counts().to_dict()}
            for path, frame in zip(args.extra, extras)
        ]
    if args.dev:
        metadata["dev_evaluation"] = {"file": Path(args.dev).name, **brief(evaluate_file(model, args.dev))}
    meta = save(model, output, metadata)
    cv = meta.get("cross_validation") or {}
    for name, what in (("real", "real buyer text"), ("written", "our written messages")):
        if name in cv:
            print(f"cross-validated macro-F1 on {what}: {cv[name]['macro_f1']:.3f} "
                  f"({cv[name]['labels_scored']} labels with >= 5 messages, n={cv[name]['n']})", file=sys.stderr)
    if "chat_false_alarm" in cv:
        print(f"non-dispute chat turns flagged as disputes: {cv['chat_false_alarm']:.1%}", file=sys.stderr)
    if args.dev:
        dev = meta["dev_evaluation"]
        print(f"{args.dev}: macro-F1 {dev['macro_f1']:.3f} over the {dev['labels_scored']} labels with >= 5 items",
              file=sys.stderr)
    print(f"wrote {output} ({meta['model_bytes'] / 1e6:.1f} MB); review threshold {model.review_threshold}, "
          f"dispute threshold {model.dispute_threshold}", file=sys.stderr)
    return 0


def cmd_evaluate(args) -> int:
    from .training import evaluate_file

    result = evaluate_file(_load(args), args.data, args.text_column, args.label_column)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    headline = ("macro-F1 n/a (no label has 5 gold items)" if result["macro_f1"] is None else
                f"macro-F1 {result['macro_f1']:.3f} over the {result['labels_scored']} labels with >= 5 gold items")
    print(f"{headline} "
          f"(all {len([r for r in result['per_label'].values() if r['support']])} labels present: "
          f"{result['macro_f1_all']:.3f}); accuracy {result['accuracy']:.3f}; n={result['n']}"
          + (f"; {result['skipped_unlabelled']} rows without a label skipped" if result["skipped_unlabelled"] else ""))
    print(f"{'label':24} {'prec':>6} {'rec':>6} {'f1':>6} {'n':>5}")
    for label, r in result["per_label"].items():
        print(f"{label:24} {r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f} {r['support']:5d}")
    print("confusion matrix (rows gold, columns predicted):")
    labels = result["labels"]
    print(" " * 6 + " ".join(f"{i:>4}" for i in range(len(labels))))
    for i, (label, row) in enumerate(zip(labels, result["confusion"])):
        print(f"{i:>4}  " + " ".join(f"{v:>4}" for v in row) + f"  {label}")
    return 0


# -- rules / info ------------------------------------------------------------------------------------
def cmd_rules(args) -> int:
    from . import knowledge

    labels = [knowledge.info(args.label).id] if args.label else knowledge.labels()
    blocks = []
    for label in labels:
        e = knowledge.info(label)
        basis = "（通用做法，平台规则未涉及）" if e.advice_basis == "general" else "（据平台规则页的售后建议）"
        window = e.complaint_window.describe()
        note = e.complaint_window.note.rstrip("。")
        lines = [f"{e.id}  {e.name}  严重程度：{e.severity_name}", f"  定义：{e.definition}", f"  规则：{e.rule}",
                 f"  处罚：{e.penalty}", f"  投诉期限：{window}" + (f"（{note}）" if note not in window else ""),
                 f"  举证期限：{e.evidence_window}"]
        if e.article87:
            lines.append(f"  注意：{e.article87}")
        lines.append(f"  处理建议{basis}：")
        lines += [f"    {i}. {step}" for i, step in enumerate(e.advice, 1)]
        blocks.append("\n".join(lines))
    print("\n\n".join(blocks))
    return 0


def cmd_info(args) -> int:
    from .artifact import default_model_path, read_metadata

    _load(args)  # verifies hash, origin and label set
    path = args.model or default_model_path()
    meta = read_metadata(path)
    if args.json:
        print(json.dumps(meta, ensure_ascii=False, indent=1))
        return 0
    cv = meta.get("cross_validation") or {}
    dev = meta.get("dev_evaluation", {})
    print(f"model: {path}")
    print(f"created: {meta.get('created')}  sha256: {meta.get('model_sha256')}")
    sources = ", ".join(f"{k} {v}" for k, v in meta.get("counts_per_source", {}).items())
    print(f"training rows: {meta.get('training_rows')} ({sources})  data sha256: {meta.get('training_data_sha256')}")
    print(f"features: {meta.get('n_features')}  review threshold: {meta['params'].get('review_threshold')}  "
          f"dispute threshold: {meta['params'].get('dispute_threshold')}  temperature: {meta.get('temperature')}")
    for name, what in (("real", "real buyer text"), ("written", "our written messages")):
        if name in cv:
            print(f"cross-validated macro-F1 on {what}: {cv[name]['macro_f1']:.3f} over {cv[name]['labels_scored']} "
                  f"labels with >= 5 messages (n={cv[name]['n']}, {cv['folds']} folds); calibration error "
                  f"{cv[name].get('calibration_error', float('nan')):.3f}")
    if "chat_false_alarm" in cv:
        print(f"non-dispute chat turns flagged as disputes (cross-validated): {cv['chat_false_alarm']:.1%}")
    if dev:
        print(f"{dev['file']}: macro-F1 {dev['macro_f1']:.3f} over {dev.get('labels_scored', '?')} labels "
              f"with >= 5 items (n={dev['n']})")
    print(f"segmentation: {meta.get('segmentation_engine')}  user dictionary sha256: {meta.get('userdict_sha256')}")
    print("messages per label: " + ", ".join(f"{k} {v}" for k, v in meta.get("counts_per_label", {}).items()))
    print("libraries: " + ", ".join(f"{k} {v}" for k, v in meta.get("library_versions", {}).items()))
    return 0


COMMANDS = {"predict": cmd_predict, "label": cmd_label, "sample": cmd_sample, "train": cmd_train,
            "evaluate": cmd_evaluate, "rules": cmd_rules, "info": cmd_info}


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv=None) -> int:
    """Entry point of the ``complaint-classifier`` command."""
    import warnings

    warnings.formatwarning = lambda message, category, *args, **kwargs: f"{PROG}: warning: {message}\n"
    args = build_parser().parse_args(argv)
    from .artifact import ModelError
    from .tabular import TableError

    errors = (UsageError, ModelError, TableError, FileNotFoundError, IsADirectoryError, PermissionError, KeyError,
              ValueError, UnicodeError)  # training.DataError is a ValueError (importing it would import pandas)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        return COMMANDS[args.command](args)
    except errors as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command != "label":
            print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        if args.command != "label":
            print(f"{PROG}: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
