"""The ``complaint-classifier`` command: argument parsing and printing only.

Every command calls the library (``classifier``); nothing here decides a label.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

PROG = "complaint-classifier"


class UsageError(Exception):
    """A command-line mistake worth one clear line."""


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return number


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", help="model file (.npz); default: the shipped model")
    parser.add_argument("--trust", action="store_true",
                        help="load a model from outside the project's models folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="给买家消息打上纠纷标签，并给出对应的平台规则和处理建议。")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("predict", help="label one or more messages")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="messages; '-' or none reads one per line from stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    p.add_argument("-k", "--top", type=_positive, default=3, help="how many labels to list (default 3)")
    p.add_argument("--threshold", type=float, help="needs_review below this probability (default: the model's)")
    p.add_argument("--order-date", type=_date, metavar="DATE", help="date the order was placed (拍下)")
    p.add_argument("--trade-success-date", type=_date, metavar="DATE", help="date the trade succeeded (交易成功)")
    p.add_argument("--trade-closed-date", type=_date, metavar="DATE", help="date the trade closed (交易关闭)")
    p.add_argument("--today", type=_date, metavar="DATE", help="count deadlines from this date (default today)")
    _model_options(p)

    p = sub.add_parser("label", help="label every row of a CSV / TSV / XLSX / JSONL file")
    p.add_argument("input", help="input table")
    p.add_argument("-o", "--output", required=True, help="output table ('-' for CSV on stdout)")
    p.add_argument("--text-column", help="column with the message text (default: detected)")
    p.add_argument("--role-column", help="column with the sender (default: detected)")
    p.add_argument("--buyer-value", action="append", help="sender value that marks a buyer (repeatable)")
    p.add_argument("--conversation-column", help="column with the conversation id (default: detected)")
    p.add_argument("--by-conversation", action="store_true", help="also label each conversation as a whole")
    p.add_argument("--conversations", metavar="PATH",
                   help="per-conversation output (default: OUTPUT with .conversations before the extension)")
    p.add_argument("--format", choices=["csv", "tsv", "xlsx", "jsonl"], help="output format (default: by extension)")
    p.add_argument("--input-format", choices=["csv", "tsv", "xlsx", "jsonl"], help="input format (default: by extension)")
    p.add_argument("--encoding", help="input encoding (default: detected among UTF-8, UTF-8 with BOM, GB18030)")
    p.add_argument("--sheet", help="XLSX sheet (default: the first)")
    p.add_argument("--jobs", type=_positive, help="processes to use (default: all cores)")
    p.add_argument("--max-chars", type=_positive, help="characters of a message used for its label (default: the model's)")
    p.add_argument("--redact", action="store_true", help="mask phones, ID numbers, e-mails, addresses and names in the text column")
    p.add_argument("--report", metavar="PATH", help="write a summary report (.html or .md)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    _model_options(p)

    p = sub.add_parser("train", help="train a model from CSV training data")
    p.add_argument("--data", nargs="+", metavar="PATH", help="CSV files or folders (default: data/messages)")
    p.add_argument("--extra", nargs="+", default=[], metavar="PATH",
                   help="reviewed sheets: rows with a filled correct_label are added to training")
    p.add_argument("-o", "--output", default="models/default.npz", help="model file to write (default: models/default.npz)")
    p.add_argument("--seed", type=int, default=0, help="seed for the cross-validation folds (default 0)")
    p.add_argument("--cv-folds", type=int, default=5, help="cross-validation folds; 0 to skip (default 5)")
    p.add_argument("--dev", metavar="CSV", help="also score a labelled real-text set (text,label) and record it")

    p = sub.add_parser("evaluate", help="score a model on a labelled CSV (columns text, label)")
    p.add_argument("data", help="labelled CSV")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    _model_options(p)

    p = sub.add_parser("rules", help="show the rule, penalty, windows and advice of a label")
    p.add_argument("label", nargs="?", help="label id (default: all labels)")

    p = sub.add_parser("info", help="show the model's metadata")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")
    _model_options(p)
    return parser


def _load(args):
    from .artifact import load

    return load(args.model, trust=args.trust)


# -- predict ----------------------------------------------------------------------------------
def _read_messages(args) -> list[str]:
    if args.texts and args.texts != ["-"]:
        return args.texts
    if not args.texts and sys.stdin.isatty():
        raise UsageError("give a message, or pipe messages in one per line (TEXT '-')")
    return [line.rstrip("\r\n") for line in sys.stdin if line.strip()]


def cmd_predict(args) -> int:
    from . import knowledge

    model = _load(args)
    if args.threshold is not None:
        model.set_params(review_threshold=args.threshold)
    texts = _read_messages(args)
    dates = dict(order_placed=args.order_date, trade_success=args.trade_success_date,
                 trade_closed=args.trade_closed_date, today=args.today)
    for text, prediction in zip(texts, model.classify(texts, k=args.top)):
        deadline = knowledge.complaint_deadline(prediction.label, **dates)
        if args.json:
            record = {"text": text, **prediction.to_dict(), "complaint_deadline": deadline.describe(),
                      "complaint_open": deadline.is_open,
                      "last_day": deadline.last_day.isoformat() if deadline.last_day else None}
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(_format_prediction(text, prediction, knowledge.info(prediction.label), deadline))
    return 0


def _format_prediction(text, prediction, entry, deadline) -> str:
    top = " | ".join(f"{label} {p:.2f}" for label, p in prediction.top)
    lines = [
        f"消息：{text if len(text) <= 80 else text[:80] + '…'}",
        f"  标签：{prediction.label}（{prediction.name}） 概率 {prediction.probability:.2f}"
        + ("  ⚠ 需人工复核" if prediction.needs_review else ""),
        f"  候选：{top}",
        f"  依据词：{'、'.join(prediction.top_terms) or '（无）'}",
        f"  规则：{entry.rule}",
        f"  处罚：{entry.penalty}",
        f"  投诉期限：{deadline.describe()}",
        f"  举证期限：{entry.evidence_window}",
    ]
    if entry.article87:
        lines.append(f"  注意：{entry.article87}")
    basis = "（通用做法，来源未涉及）" if entry.advice_basis == "general" else ""
    lines.append(f"  处理建议{basis}：")
    lines += [f"    {i}. {step}" for i, step in enumerate(entry.advice, 1)]
    return "\n".join(lines)


# -- label ------------------------------------------------------------------------------------
def cmd_label(args) -> int:
    from .batch import LABEL_COLUMNS, label_table

    model = _load(args)
    conversations = None
    if args.by_conversation:
        conversations = args.conversations or _sibling(args.output, "conversations")
    for extra in (args.output if args.output != "-" else None, args.report, conversations):  # fail before any work
        if extra and not Path(extra).resolve().parent.is_dir():
            raise UsageError(f"output folder does not exist: {Path(extra).resolve().parent}")
    show = not args.quiet
    bar = _progress_bar() if show and sys.stderr.isatty() else None

    def on_columns(columns):
        if show:
            used = [f"text={columns.text}", f"role={columns.role or '-'}",
                    f"conversation={columns.conversation or '-'}", f"time={columns.time or '-'}"]
            print("columns: " + ", ".join(used), file=sys.stderr)
            for name in set(columns.header) & set(LABEL_COLUMNS):
                print(f"note: input column {name!r} is kept as 'input_{name}' in the output", file=sys.stderr)

    started = time.perf_counter()
    try:
        summary = label_table(
            args.input, args.output, model,
            text_column=args.text_column, role_column=args.role_column, buyer_values=args.buyer_value,
            conversation_column=args.conversation_column, by_conversation=args.by_conversation,
            conversation_output=conversations, input_format=args.input_format, output_format=args.format,
            encoding=args.encoding, sheet=args.sheet, jobs=args.jobs, max_chars=args.max_chars,
            redact=args.redact, progress=bar.update if bar else None, on_columns=on_columns,
        )
    finally:
        if bar:
            bar.close()
    seconds = time.perf_counter() - started
    if args.report:
        from .report import write_report

        write_report(summary, args.report, title=Path(args.input).name)
    if show:
        skipped = ", ".join(f"{k} {v}" for k, v in summary.skipped.items()) or "none"
        print(f"rows read {summary.rows_read}, labelled {summary.labelled} "
              f"(truncated {summary.statuses['truncated']}), skipped: {skipped}; "
              f"needs review {summary.needs_review}; {seconds:.1f}s", file=sys.stderr)
        if conversations:
            print(f"conversations labelled {summary.conversations} -> {conversations}", file=sys.stderr)
        print(f"wrote {args.output}" + (f" and {args.report}" if args.report else ""), file=sys.stderr)
    if not args.encoding and summary.encoding not in (None, "utf-8", "utf-8-sig", "gb18030"):
        print(f"note: {args.input} was read as {summary.encoding} (a guess); pass --encoding if the text looks wrong",
              file=sys.stderr)
    return 0


def _sibling(path: str, tag: str) -> str:
    if path == "-":
        raise UsageError("--by-conversation with output '-' needs --conversations PATH")
    p = Path(path)
    return str(p.with_name(f"{p.stem}.{tag}{p.suffix}"))


def _progress_bar():
    from tqdm import tqdm

    return tqdm(unit=" rows", file=sys.stderr, smoothing=0.1)


# -- train / evaluate -------------------------------------------------------------------------
def cmd_train(args) -> int:
    import pandas as pd

    from .artifact import save
    from .training import DEFAULT_DATA_DIR, brief, evaluate_file, load_corpus, load_reviewed, train

    corpus = load_corpus(args.data or [DEFAULT_DATA_DIR])
    extras = [load_reviewed(path) for path in args.extra]
    if extras:
        corpus = pd.concat([corpus, *extras], ignore_index=True)
    print(f"training on {len(corpus)} messages ({sum(map(len, extras))} reviewed)", file=sys.stderr)
    model, metadata = train(corpus, cv_folds=args.cv_folds, seed=args.seed)
    if extras:
        metadata["reviewed_added"] = [
            {"file": str(path), "rows": len(frame), "labels": frame["label"].value_counts().to_dict()}
            for path, frame in zip(args.extra, extras)
        ]
    if args.dev:
        metadata["dev_evaluation"] = {"file": Path(args.dev).name, **brief(evaluate_file(model, args.dev))}
    meta = save(model, args.output, metadata)
    cv = meta.get("cross_validation")
    if cv:
        print(f"cross-validated macro-F1 {cv['macro_f1']:.3f} over {cv['folds']} folds", file=sys.stderr)
    if args.dev:
        dev = meta["dev_evaluation"]
        print(f"{args.dev}: macro-F1 {dev['macro_f1_min5']:.3f} over labels with >= 5 items "
              f"({dev['macro_f1']:.3f} over all)", file=sys.stderr)
    print(f"wrote {args.output} ({meta['model_bytes'] / 1e6:.1f} MB), review threshold "
          f"{model.review_threshold}", file=sys.stderr)
    return 0


def cmd_evaluate(args) -> int:
    from .training import evaluate_file

    result = evaluate_file(_load(args), args.data, args.text_column, args.label_column)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    print(f"{'label':24} {'prec':>6} {'rec':>6} {'f1':>6} {'n':>5}")
    for label, r in result["per_label"].items():
        print(f"{label:24} {r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f} {r['support']:5d}")
    print(f"n={result['n']} accuracy={result['accuracy']:.3f} macro_f1={result['macro_f1']:.3f} "
          f"macro_f1 (labels with >= 5 items)={result['macro_f1_min5']:.3f}")
    print("confusion matrix (rows gold, columns predicted):")
    labels = result["labels"]
    print(" " * 6 + " ".join(f"{i:>4}" for i in range(len(labels))))
    for i, (label, row) in enumerate(zip(labels, result["confusion"])):
        print(f"{i:>4}  " + " ".join(f"{v:>4}" for v in row) + f"  {label}")
    return 0


# -- rules / info -----------------------------------------------------------------------------
def cmd_rules(args) -> int:
    from . import knowledge

    labels = [args.label] if args.label else knowledge.labels()
    blocks = []
    for label in labels:
        e = knowledge.info(label)
        basis = "（通用做法，来源未涉及）" if e.advice_basis == "general" else "（据来源的售后建议）"
        lines = [f"{e.id}  {e.name}  严重程度：{e.severity}", f"  定义：{e.definition}", f"  规则：{e.rule}",
                 f"  处罚：{e.penalty}", f"  投诉期限：{e.complaint_window.describe()}（{e.complaint_window.note}）",
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
    cv = meta.get("cross_validation", {})
    dev = meta.get("dev_evaluation", {})
    print(f"model: {path}")
    print(f"created: {meta.get('created')}  sha256: {meta.get('model_sha256')}")
    print(f"training rows: {meta.get('training_rows')}  data sha256: {meta.get('training_data_sha256')}")
    print(f"features: {meta.get('n_features')}  review threshold: {meta['params'].get('review_threshold')}")
    if cv:
        print(f"cross-validated macro-F1: {cv['macro_f1']:.3f} ({cv['folds']} folds, n={cv['n']})")
    if dev:
        print(f"real-text macro-F1 ({dev['file']}): {dev.get('macro_f1_min5', dev['macro_f1']):.3f} "
              f"over labels with >= 5 items (n={dev['n']})")
    print("messages per label: " + ", ".join(f"{k} {v}" for k, v in meta.get("counts_per_label", {}).items()))
    print("libraries: " + ", ".join(f"{k} {v}" for k, v in meta.get("library_versions", {}).items()))
    return 0


COMMANDS = {"predict": cmd_predict, "label": cmd_label, "train": cmd_train, "evaluate": cmd_evaluate,
            "rules": cmd_rules, "info": cmd_info}


def main(argv=None) -> int:
    """Entry point of the ``complaint-classifier`` command."""
    import warnings

    warnings.formatwarning = lambda message, category, *args, **kwargs: f"{PROG}: warning: {message}\n"
    args = build_parser().parse_args(argv)
    from .artifact import ModelError
    from .tabular import TableError

    errors = (UsageError, ModelError, TableError, FileNotFoundError, IsADirectoryError, PermissionError,
              KeyError, ValueError, UnicodeError)
    try:
        return COMMANDS[args.command](args)
    except errors as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
