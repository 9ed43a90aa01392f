"""Load and validate training data, cross-validate, calibrate, evaluate and train.

A training file is a CSV with the columns ``text`` and ``label`` and optionally
``secondary``, ``source`` (``written`` by us, ``real`` buyer text we labelled, ``reviewed``
rows from a service team, ``augmented`` variants), ``origin`` (for augmented rows: the
written text the variant was made from) and ``kind`` (``chat`` turn or ``review``). Other
columns (such as the two annotations beside a real row's label) are kept out of training.
A reviewed file from a batch run, with a filled ``correct_label`` column, is accepted as extra
data as it is.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import knowledge
from .decision import decide
from .model import ComplaintClassifier, fit_linear, softmax
from .segment import userdict_sha256

DATA_FOLDERS = ("messages", "real")
COLUMNS = ["text", "label", "secondary", "source", "origin", "kind"]
SOURCES = ("written", "real", "reviewed", "augmented")
DUPLICATE_JACCARD = 0.5      # rows this close (character 4-grams) always share a fold
CHAT_FALSE_ALARM_TARGET = 0.03
REVIEW_ACCURACY_TARGET = 0.9
DEFAULT_REAL_WEIGHT = 2.0    # weight of a real (or reviewed) row against a written one, chosen by CV on real data


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


def default_data_paths() -> list[Path]:
    """The project's training folders (``data/messages``, ``data/real``) that exist, under the
    working directory or else under the checkout the package was installed from."""
    for root in (Path("data"), Path(__file__).resolve().parents[1] / "data"):
        found = [root / name for name in DATA_FOLDERS if (root / name).is_dir()]
        if found:
            return found
    return []


def load_corpus(paths=None) -> pd.DataFrame:
    """Read training CSVs (files or folders of ``*.csv``) into one validated table.

    Columns of the result: ``text``, ``label``, ``secondary``, ``source``, ``origin``, ``kind``,
    ``file``. ``paths`` defaults to ``default_data_paths()``.
    """
    paths = default_data_paths() if paths is None else paths
    if not paths:
        raise DataError("no training data: the project's data/messages and data/real were not found here or "
                        "beside the installed package; run from the project folder or pass --data")
    frames = []
    for path in _csv_files(paths):
        frame = _read_csv(path)
        missing = {"text", "label"} - set(frame.columns)
        if missing:
            raise DataError(f"{path}: missing column(s) {sorted(missing)}; columns are {list(frame.columns)}")
        for column in COLUMNS[2:]:
            if column not in frame.columns:
                frame[column] = ""
        if "outcome" in frame.columns:  # annotated real data: rows the adjudicator dropped are not training data
            frame = frame[frame["outcome"] != "dropped"].reset_index(drop=True)
        frame = frame[COLUMNS].copy()
        frame["source"] = frame["source"].replace("", "written")
        frame["kind"] = frame["kind"].where(frame["kind"] != "", "chat" if "chat" in path.stem else "")
        frame["file"] = path.name
        _check_labels(frame, path)
        frames.append(frame)
    corpus = pd.concat(frames, ignore_index=True)
    corpus["text"] = corpus["text"].str.strip()
    return corpus


def load_reviewed(path) -> pd.DataFrame:
    """Rows of a reviewed sheet whose ``correct_label`` is filled, as training rows.

    Any table with ``correct_label`` and a text column works, including the output of
    ``label`` or ``sample`` after a person filled in ``correct_label``, with a label id (in any
    case) or its Chinese name (``延迟发货``, ``其他/非纠纷``, ``其他``).
    """
    from .tabular import TEXT_COLUMNS, detect_column, read_table

    table = read_table(path)
    if "correct_label" not in table.columns:
        raise DataError(f"{path}: no correct_label column; columns are {list(table.columns)}")
    text_column = detect_column(table.columns, TEXT_COLUMNS, "text")
    reviewed = table[table["correct_label"].fillna("").astype(str).str.strip() != ""]
    frame = pd.DataFrame(
        {
            "text": reviewed[text_column].fillna("").astype(str).str.strip(),
            "label": reviewed["correct_label"].astype(str).str.strip().map(_label_id),
            "secondary": "",
            "source": "reviewed",
            "origin": "",
            "kind": "",
            "file": Path(path).name,
        }
    )
    _check_labels(frame, path)
    return frame.reset_index(drop=True)


def _label_id(value: str) -> str:
    """The label id a reviewer meant (an id in any case, or a Chinese name); else ``value`` as it is."""
    try:
        return knowledge.info(value.lower() if value.isascii() else value).id
    except KeyError:
        return value


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
    sources = frame["source"][~frame["source"].isin(SOURCES)]
    if len(sources):
        raise DataError(f"{path}: line {int(sources.index[0]) + 2}: unknown source {sources.iloc[0]!r}; "
                        f"expected one of: {', '.join(SOURCES)}")
    empty = frame.index[frame["text"].astype(str).str.strip() == ""]
    if len(empty):
        raise DataError(f"{path}: line {int(empty[0]) + 2}: empty text ({len(empty)} row(s) in all)")


def data_sha256(corpus: pd.DataFrame) -> str:
    """A SHA-256 of the training rows (text, label, source), independent of file layout and order."""
    digest = hashlib.sha256()
    for text, label, source in sorted(zip(corpus["text"], corpus["label"], corpus["source"])):
        digest.update(f"{label}\t{source}\t{text}\n".encode("utf-8"))
    return digest.hexdigest()


# -- scores -----------------------------------------------------------------------------------------
def scores(y_true, y_pred, labels=None) -> dict:
    """Per-label precision, recall, F1 and support, macro-F1, accuracy and the confusion matrix.

    ``macro_f1`` is the headline everywhere in this project (the one of ``shared/tools/score.py``):
    the mean F1 over the labels with at least 5 gold items. ``macro_f1_all`` averages every label
    present in ``y_true``; ``labels_scored`` says how many labels the headline covers.
    """
    from sklearn.metrics import precision_recall_fscore_support

    labels = list(labels or [lab for lab in knowledge.labels() if lab in set(y_true) | set(y_pred)])
    index = {lab: i for i, lab in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    for gold, guess in zip(y_true, y_pred):
        if gold in index and guess in index:
            confusion[index[gold], index[guess]] += 1
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = [i for i, lab in enumerate(labels) if s[i] > 0]
    frequent = [i for i in present if s[i] >= 5]
    return {
        "n": len(y_true),
        "macro_f1": float(np.mean([f[i] for i in frequent])) if frequent else 0.0,
        "labels_scored": len(frequent),
        "macro_f1_all": float(np.mean([f[i] for i in present])) if present else 0.0,
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "per_label": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "labels": labels,
        "confusion": confusion.tolist(),
    }


def expected_calibration_error(probabilities: np.ndarray, y_true, classes, bins: int = 10) -> float:
    """Top-label expected calibration error: the mean gap between confidence and accuracy over
    equal-width confidence bins, weighted by the bins' sizes."""
    classes = np.asarray(classes)
    confidence = probabilities.max(axis=1)
    correct = classes[probabilities.argmax(axis=1)] == np.asarray(y_true)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(gap)


def fit_temperature(scores_: np.ndarray, y_true, classes) -> float:
    """The temperature T that minimises the log-loss of ``softmax(scores / T)`` (temperature scaling)."""
    from scipy.optimize import minimize_scalar

    gold = pd.Index(list(classes)).get_indexer(list(y_true))
    rows = np.arange(len(gold))

    def loss(log_t: float) -> float:
        p = softmax(scores_ / np.exp(log_t))
        return float(-np.mean(np.log(np.maximum(p[rows, gold], 1e-12))))

    return round(float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x)), 4)


def choose_dispute_threshold(dispute_probability: np.ndarray, target: float = CHAT_FALSE_ALARM_TARGET) -> float:
    """The lowest threshold at which at most ``target`` of these non-dispute messages are flagged."""
    if not len(dispute_probability):
        return 0.5
    candidates = np.round(np.arange(0.3, 0.96, 0.01), 2)
    for threshold in candidates:
        if (dispute_probability >= threshold).mean() <= target:
            return float(threshold)
    return float(candidates[-1])


def choose_review_threshold(probability: np.ndarray, correct: np.ndarray,
                            target: float = REVIEW_ACCURACY_TARGET) -> float:
    """The lowest probability above which predictions reach ``target`` accuracy; those under it need review."""
    for threshold in np.round(np.arange(0.3, 0.96, 0.05), 2):
        kept = probability >= threshold
        if kept.any() and correct[kept].mean() >= target:
            return float(threshold)
    return 0.95


# -- cross-validation -------------------------------------------------------------------------------
def duplicate_groups(texts: list[str], threshold: float = DUPLICATE_JACCARD) -> np.ndarray:
    """A group id per text: texts linked by a chain of near-duplicate pairs share one."""
    from .datacheck import near_duplicates

    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in near_duplicates(texts, threshold=threshold):
        parent[root(i)] = root(j)
    return pd.factorize(np.array([root(i) for i in range(len(texts))]))[0]


def sample_weights(corpus: pd.DataFrame, real_weight: float = DEFAULT_REAL_WEIGHT) -> np.ndarray:
    """Weight of each row in training: ``real_weight`` for real (and reviewed) rows, 1 for written ones."""
    return np.where(corpus["source"].isin(["real", "reviewed"]), real_weight, 1.0)


def _fold_scores(params: dict, rows_train, y_train, w_train, rows_test):
    classes, coef, intercept = fit_linear(rows_train, y_train, w_train, params["C"], params["class_weight"])
    return classes, rows_test.dot(coef) + intercept


def cross_validate(corpus: pd.DataFrame, params: dict | None = None, folds: int = 5, seed: int = 0,
                   real_weight: float = DEFAULT_REAL_WEIGHT, jobs: int | None = None, progress=None,
                   train_only=None) -> dict:
    """Grouped, stratified k-fold cross-validation on ``corpus``, calibrated on held-out folds.

    Near-duplicates (and augmented variants with their origin) never straddle two folds. Each
    fold's model is fitted on the other folds; its scores on the held-out rows are calibrated
    with a temperature and judged with a dispute threshold chosen on the *other* folds' scores,
    so every figure here is about rows no choice was made on. Returns the scores over real rows
    (``real``) and over written rows (``written``), their calibration error, the false-alarm rate
    on non-dispute chat turns, the out-of-fold ``probabilities`` / ``predictions`` / ``index`` of
    the scored rows, and the calibration and thresholds chosen on all folds for the final model.
    A ``dispute_threshold`` given in ``params`` is used as it is, not chosen.
    ``progress(done, folds, seconds)`` is called as folds finish. Rows where the boolean array
    ``train_only`` is true are in every fold's training (unless their near-duplicates are held out)
    and never scored, like augmented rows: what adding them buys on the other rows.
    """
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedGroupKFold

    from .features import Vectorizer

    params_given = params
    model = ComplaintClassifier(**(params or {}))
    params = model.get_params()
    docs = model.analyze(corpus["text"].tolist())
    labels = corpus["label"].to_numpy()
    source = corpus["source"].to_numpy()
    key = corpus["origin"].where(corpus["origin"].fillna("") != "", corpus["text"]).tolist()
    groups = duplicate_groups(key)
    weights = sample_weights(corpus, real_weight)
    extra = (source == "augmented") | (np.zeros(len(corpus), bool) if train_only is None else np.asarray(train_only))
    scored = np.flatnonzero(~extra)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = np.full(len(corpus), -1)
    for k, (_, test) in enumerate(splitter.split(scored, labels[scored], groups[scored])):
        fold_of[scored[test]] = k
    fold_of[extra] = -2  # trained on in every fold whose held-out rows do not include its group

    def fold_inputs():
        for k in range(folds):
            held_out = set(groups[fold_of == k])
            train_rows = [i for i in range(len(corpus)) if groups[i] not in held_out]
            test_rows = np.flatnonzero(fold_of == k)
            vectorizer = Vectorizer(model.char_ngrams, model.min_df, model.max_df, model.max_count).fit(
                [docs[i] for i in train_rows])
            yield (vectorizer.transform([docs[i] for i in train_rows]), labels[train_rows], weights[train_rows],
                   vectorizer.transform([docs[i] for i in test_rows]))

    classes = np.asarray(knowledge.labels())
    raw = np.zeros((len(corpus), len(classes)))
    started, done = time.perf_counter(), 0
    tasks = (delayed(_fold_scores)(params, *inputs) for inputs in fold_inputs())
    for k, (fold_classes, fold_scores) in enumerate(Parallel(n_jobs=jobs or -1, return_as="generator")(tasks)):
        test_rows = np.flatnonzero(fold_of == k)
        columns = [int(np.flatnonzero(classes == c)[0]) for c in fold_classes]
        missing = [j for j in range(len(classes)) if j not in columns]
        raw[np.ix_(test_rows, columns)] = fold_scores
        raw[np.ix_(test_rows, missing)] = -1e4  # a label no training row of this fold had
        done += 1
        if progress:
            progress(done, folds, time.perf_counter() - started)
    fixed = (params_given or {}).get("dispute_threshold")
    return _summarize(corpus, raw, fold_of, folds, seed, real_weight, fixed)


def _summarize(corpus: pd.DataFrame, raw: np.ndarray, fold_of: np.ndarray, folds: int, seed: int,
               real_weight: float, fixed_threshold: float | None = None) -> dict:
    classes = np.asarray(knowledge.labels())
    labels = corpus["label"].to_numpy()
    real = corpus["source"].isin(["real", "reviewed"]).to_numpy()
    chat_other = ((corpus["kind"] == "chat") & (corpus["label"] == "other")).to_numpy()
    other = int(np.flatnonzero(classes == "other")[0])
    calibrate_on = real if real.any() else fold_of >= 0

    def choices(train: np.ndarray) -> tuple[float, float]:
        fit_rows = train & calibrate_on
        temperature = fit_temperature(raw[fit_rows], labels[fit_rows], classes) if fit_rows.any() else 1.0
        p = softmax(raw[train & chat_other] / temperature)
        if fixed_threshold is not None:
            return temperature, fixed_threshold
        return temperature, choose_dispute_threshold(1 - p[:, other])

    probabilities = np.zeros_like(raw)
    predictions = np.empty(len(corpus), dtype=object)
    for k in range(folds):
        test = fold_of == k
        temperature, threshold = choices((fold_of >= 0) & ~test)
        probabilities[test] = softmax(raw[test] / temperature)
        decided = decide(probabilities[test], classes, np.zeros(test.sum(), np.int64), dispute_threshold=threshold,
                         review_threshold=0.0)
        predictions[test] = classes[decided.label]
    temperature, dispute_threshold = choices(fold_of >= 0)
    scored = fold_of >= 0
    chosen = probabilities[np.arange(len(corpus)), pd.Index(classes).get_indexer(predictions.astype(str))]
    correct = predictions == labels
    review_basis = real & scored if (real & scored).any() else scored
    result = {
        "folds": folds, "seed": seed, "real_weight": real_weight,
        "temperature": temperature, "dispute_threshold": dispute_threshold,
        "review_threshold": choose_review_threshold(chosen[review_basis], correct[review_basis]),
        "index": np.flatnonzero(scored), "probabilities": probabilities[scored],
        "predictions": predictions[scored].astype(str), "fold": fold_of[scored],
    }
    for name, rows in (("real", real & scored), ("written", ~real & scored)):
        if rows.any():
            result[name] = {**scores(labels[rows].tolist(), predictions[rows].tolist()),
                            "calibration_error": expected_calibration_error(probabilities[rows], labels[rows], classes),
                            "calibration_error_uncalibrated": expected_calibration_error(softmax(raw[rows]), labels[rows],
                                                                                         classes)}
    if (chat_other & scored).any():
        result["chat_false_alarm"] = float((predictions[chat_other & scored] != "other").mean())
        result["chat_other_rows"] = int((chat_other & scored).sum())
    return result


def brief(result: dict) -> dict:
    """The JSON-friendly part of a score dict, as recorded in a model's metadata."""
    keys = ("n", "macro_f1", "labels_scored", "macro_f1_all", "accuracy", "calibration_error",
            "calibration_error_uncalibrated", "per_label")
    return {k: result[k] for k in keys if k in result}


def cv_brief(cv: dict) -> dict:
    """The JSON-friendly part of a ``cross_validate`` result."""
    keys = ("folds", "seed", "real_weight", "temperature", "dispute_threshold", "review_threshold",
            "chat_false_alarm", "chat_other_rows")
    return {**{k: cv[k] for k in keys if k in cv}, **{name: brief(cv[name]) for name in ("real", "written") if name in cv}}


def train(corpus: pd.DataFrame, params: dict | None = None, cv_folds: int = 5, seed: int = 0,
          cv: dict | None = None, real_weight: float = DEFAULT_REAL_WEIGHT, jobs: int | None = None,
          progress=None) -> tuple[ComplaintClassifier, dict]:
    """Cross-validate, calibrate, choose the thresholds, fit on all rows; return the model and its metadata.

    Pass ``cv`` (a ``cross_validate`` result on the same corpus) to reuse it instead of running
    another. ``cv_folds=0`` skips cross-validation: the model then keeps the documented default
    thresholds (``ComplaintClassifier``'s review 0.8 and dispute 0.5) and no calibration, and the
    metadata says so. Thresholds given in ``params`` are kept either way.
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
        "real_weight": real_weight,
        "userdict_sha256": userdict_sha256(),
    }
    if cv is None and cv_folds:
        cv = cross_validate(corpus, params, folds=cv_folds, seed=seed, real_weight=real_weight, jobs=jobs,
                            progress=progress)
    temperature = 1.0
    if cv is not None:
        params.setdefault("review_threshold", cv["review_threshold"])
        params.setdefault("dispute_threshold", cv["dispute_threshold"])
        temperature = cv["temperature"]
        metadata["cross_validation"] = cv_brief(cv)
    else:
        metadata["cross_validation"] = None
    model = ComplaintClassifier(**params).fit(corpus["text"].tolist(), corpus["label"].tolist(),
                                              sample_weight=sample_weights(corpus, real_weight))
    model.temperature_ = temperature
    metadata["segmentation_engine"] = model.analyzer.segmenter.engine
    return model, metadata


def evaluate_file(model: ComplaintClassifier, path, text_column: str | None = None,
                  label_column: str | None = None) -> dict:
    """Score ``model`` on a labelled table (any format ``label`` reads).

    The gold label is ``label_column``, else ``correct_label`` or ``label``; rows whose gold label
    is empty are skipped (a half-reviewed sheet), an unknown one is an error. In an output of
    ``label`` the ``label`` column is the model's guess, never gold: the gold there is
    ``correct_label`` or the input's own label column (``input_label``).
    """
    from .tabular import TEXT_COLUMNS, check_column, detect_column, is_own_output, read_table

    table = read_table(path)
    text_column = (check_column(table.columns, text_column, "text") if text_column
                   else detect_column(table.columns, TEXT_COLUMNS, "text"))
    if label_column:
        check_column(table.columns, label_column, "label")
    else:
        labelled = is_own_output(list(table.columns))
        candidates = ("correct_label", "input_label") if labelled else ("correct_label", "label", "gold", "标签")
        label_column = next((c for c in candidates if c in table.columns), None)
        if label_column is None:
            what = ("this tool wrote it, and its label column is the model's guess; fill in correct_label"
                    if labelled else f"columns are {list(table.columns)}")
            raise DataError(f"{path}: no gold label column ({', '.join(candidates[:2])}): {what}")
    gold = table[label_column].fillna("").astype(str).str.strip()
    keep = gold != ""
    bad = gold[keep & ~gold.isin(knowledge.labels())]
    if len(bad):
        raise DataError(f"{path}: row {int(bad.index[0]) + 2}: unknown label {bad.iloc[0]!r}; "
                        f"valid ids: {', '.join(knowledge.labels())}")
    if not keep.any():
        raise DataError(f"{path}: no row has a label in {label_column!r}")
    predicted = model.predict(table.loc[keep, text_column].fillna("").astype(str).tolist())
    result = scores(gold[keep].tolist(), [str(p) for p in predicted])
    if not result["labels_scored"]:
        result["macro_f1"] = None  # the headline needs a label with 5 gold items
    return {**result, "label_column": label_column, "skipped_unlabelled": int((~keep).sum())}


