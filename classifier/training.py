"""Load and validate training data, cross-validate, evaluate and train.

A training file is a CSV with the columns ``text`` and ``label`` and optionally
``secondary``, ``source`` (``written`` or ``augmented``) and, for augmented rows,
``origin`` (the written text the variant was made from). A reviewed file from a batch
run, with a filled ``correct_label`` column, is accepted as extra data as it is.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from . import knowledge
from .model import ComplaintClassifier

DEFAULT_DATA_DIR = Path("data") / "messages"
COLUMNS = ["text", "label", "secondary", "source", "origin"]


class DataError(ValueError):
    """Training data that cannot be used, with the reason and where."""


def _csv_files(paths) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("*.csv"))
            if not found:
                raise DataError(f"no .csv files in {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"training data not found: {path}")
    return files


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def load_corpus(paths=(DEFAULT_DATA_DIR,)) -> pd.DataFrame:
    """Read training CSVs (files or folders of ``*.csv``) into one validated table.

    Columns of the result: ``text``, ``label``, ``secondary``, ``source``, ``origin``, ``file``.
    """
    frames = []
    for path in _csv_files(paths):
        frame = _read_csv(path)
        missing = {"text", "label"} - set(frame.columns)
        if missing:
            raise DataError(f"{path}: missing column(s) {sorted(missing)}; columns are {list(frame.columns)}")
        for column in ("secondary", "source", "origin"):
            if column not in frame.columns:
                frame[column] = ""
        frame = frame[COLUMNS].copy()
        frame["source"] = frame["source"].replace("", "written")
        frame["file"] = path.name
        _check_labels(frame, path)
        frames.append(frame)
    corpus = pd.concat(frames, ignore_index=True)
    corpus["text"] = corpus["text"].str.strip()
    return corpus


def load_reviewed(path) -> pd.DataFrame:
    """Rows of a reviewed sheet whose ``correct_label`` is filled, as training rows.

    Any table with ``correct_label`` and a text column works, including the output of
    ``label`` after a person filled in ``correct_label``.
    """
    from .tabular import read_table

    table = read_table(path)
    if "correct_label" not in table.columns:
        raise DataError(f"{path}: no correct_label column; columns are {list(table.columns)}")
    text_column = "text" if "text" in table.columns else None
    if text_column is None:
        from .tabular import detect_column, TEXT_COLUMNS

        text_column = detect_column(table.columns, TEXT_COLUMNS, "text")
    reviewed = table[table["correct_label"].fillna("").astype(str).str.strip() != ""]
    frame = pd.DataFrame(
        {
            "text": reviewed[text_column].fillna("").astype(str).str.strip(),
            "label": reviewed["correct_label"].astype(str).str.strip(),
            "secondary": "",
            "source": "reviewed",
            "origin": "",
            "file": Path(path).name,
        }
    )
    _check_labels(frame, path)
    return frame.reset_index(drop=True)


def _check_labels(frame: pd.DataFrame, path) -> None:
    valid = set(knowledge.labels())
    for column in ("label", "secondary"):
        values = frame[column].astype(str).str.strip()
        bad = values[~values.isin(valid) & ((values != "") | (column == "label"))]
        if len(bad):
            row = int(bad.index[0]) + 2
            raise DataError(
                f"{path}: line {row}: unknown {column} {bad.iloc[0]!r} ({len(bad)} row(s) in all); "
                f"valid ids: {', '.join(knowledge.labels())}"
            )
    empty = frame.index[frame["text"].astype(str).str.strip() == ""]
    if len(empty):
        raise DataError(f"{path}: line {int(empty[0]) + 2}: empty text ({len(empty)} row(s) in all)")


def data_sha256(corpus: pd.DataFrame) -> str:
    """A SHA-256 of the training rows (text and label), independent of file layout and order."""
    digest = hashlib.sha256()
    for text, label in sorted(zip(corpus["text"], corpus["label"])):
        digest.update(f"{label}\t{text}\n".encode("utf-8"))
    return digest.hexdigest()


def scores(y_true, y_pred, labels=None) -> dict:
    """Per-label precision, recall, F1 and support, macro-F1, accuracy and the confusion matrix.

    ``macro_f1`` averages the labels present in ``y_true``; ``macro_f1_min5`` only those with
    at least 5 gold items (the headline of ``shared/tools/score.py``).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(labels or [lab for lab in knowledge.labels() if lab in set(y_true) | set(y_pred)])
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = [i for i, lab in enumerate(labels) if s[i] > 0]
    frequent = [i for i in present if s[i] >= 5]
    return {
        "n": len(y_true),
        "macro_f1": float(np.mean([f[i] for i in present])) if present else 0.0,
        "macro_f1_min5": float(np.mean([f[i] for i in frequent])) if frequent else 0.0,
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "per_label": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "labels": labels,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def cross_validate(corpus: pd.DataFrame, params: dict | None = None, folds: int = 5, seed: int = 0) -> dict:
    """Stratified k-fold cross-validation on ``corpus``.

    Augmented rows are only ever trained on, never scored, and variants of one written
    message stay in the same fold as it. Returns ``scores`` plus the out-of-fold
    ``probabilities`` / ``predictions`` of the scored rows and their ``index``.
    """
    from sklearn.model_selection import StratifiedKFold

    model = ComplaintClassifier(**(params or {}))
    docs = [model.analyze(t) for t in corpus["text"]]
    labels = corpus["label"].to_numpy()
    groups = _groups(corpus)
    written = np.flatnonzero(corpus["source"].to_numpy() != "augmented")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probabilities = np.zeros((len(written), len(knowledge.labels())))
    for train_idx, test_idx in splitter.split(written, labels[written]):
        held_out_groups = set(groups[written[test_idx]])
        train_rows = [i for i in range(len(corpus)) if groups[i] not in held_out_groups]
        fold = ComplaintClassifier(**model.get_params()).fit_terms([docs[i] for i in train_rows], labels[train_rows])
        proba = fold.predict_proba_terms([docs[i] for i in written[test_idx]])
        columns = [knowledge.labels().index(c) for c in fold.classes_]
        probabilities[np.ix_(test_idx, columns)] = proba
    predictions = np.asarray(knowledge.labels())[probabilities.argmax(axis=1)]
    result = scores(labels[written], predictions)
    result.update(probabilities=probabilities, predictions=predictions, index=written, folds=folds, seed=seed)
    return result


def _groups(corpus: pd.DataFrame) -> np.ndarray:
    """A group id per row: augmented rows share the id of the written text they came from."""
    key = corpus["origin"].where(corpus["origin"].fillna("") != "", corpus["text"])
    return pd.factorize(key)[0]


def choose_review_threshold(probabilities: np.ndarray, y_true, target_accuracy: float = 0.97) -> float:
    """The lowest probability above which out-of-fold predictions reach ``target_accuracy``.

    Predictions under it are flagged ``needs_review``.
    """
    labels = np.asarray(knowledge.labels())
    top = probabilities.max(axis=1)
    correct = labels[probabilities.argmax(axis=1)] == np.asarray(y_true)
    for threshold in np.arange(0.2, 0.95, 0.05):
        kept = top >= threshold
        if kept.any() and correct[kept].mean() >= target_accuracy:
            return round(float(threshold), 2)
    return 0.95


def brief(result: dict) -> dict:
    """The JSON-friendly part of a score dict, as recorded in a model's metadata."""
    return {k: result[k] for k in ("n", "macro_f1", "macro_f1_min5", "accuracy", "per_label") if k in result}


def train(corpus: pd.DataFrame, params: dict | None = None, cv_folds: int = 5, seed: int = 0,
          cv: dict | None = None) -> tuple[ComplaintClassifier, dict]:
    """Cross-validate, choose the review threshold, fit on all rows; return the model and its metadata.

    Pass ``cv`` (a ``cross_validate`` result on the same corpus) to reuse it instead of
    running another; ``cv_folds=0`` skips cross-validation (and keeps the default threshold).
    """
    params = dict(params or {})
    metadata = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "training_data_sha256": data_sha256(corpus),
        "training_rows": int(len(corpus)),
        "counts_per_label": {lab: int((corpus["label"] == lab).sum()) for lab in knowledge.labels()},
        "counts_per_source": {k: int(v) for k, v in corpus["source"].value_counts().items()},
        "files": sorted(corpus["file"].unique().tolist()) if "file" in corpus else [],
        "seed": seed,
    }
    if cv is None and cv_folds:
        cv = cross_validate(corpus, params, folds=cv_folds, seed=seed)
    if cv is not None:
        written_labels = corpus["label"].to_numpy()[cv["index"]]
        params.setdefault("review_threshold", choose_review_threshold(cv["probabilities"], written_labels))
        metadata["cross_validation"] = {**brief(cv), "folds": cv["folds"], "seed": cv["seed"]}
    model = ComplaintClassifier(**params).fit(corpus["text"].tolist(), corpus["label"].tolist())
    return model, metadata


def evaluate_file(model: ComplaintClassifier, path, text_column: str = "text", label_column: str = "label") -> dict:
    """Score ``model`` on a labelled CSV; rows with an unknown or empty gold label are an error."""
    frame = _read_csv(Path(path))
    for column in (text_column, label_column):
        if column not in frame.columns:
            raise DataError(f"{path}: no {column!r} column; columns are {list(frame.columns)}")
    gold = frame[label_column].str.strip()
    bad = gold[~gold.isin(knowledge.labels())]
    if len(bad):
        raise DataError(f"{path}: line {int(bad.index[0]) + 2}: unknown label {bad.iloc[0]!r}")
    predicted = model.predict(frame[text_column].tolist())
    return scores(gold.tolist(), [str(p) for p in predicted])
