"""Helpers for the notebooks: pure pandas/NumPy work on corpora, scores and predictions.

Nothing here draws (see ``plots``) and nothing here is needed by the command line. The
score dicts are the ones ``training.scores`` / ``cross_validate`` / ``evaluate_file``
return, or the ``cross_validation`` / ``dev_evaluation`` entries of a model's metadata.
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from . import knowledge
from .features import WORD

REVIEW_COLUMNS = ["text", "label", "predicted", "probability", "second", "terms", "file", "correct_label"]


# -- corpus ------------------------------------------------------------------------------------
def subsample(corpus: pd.DataFrame, n: int | float | None, seed: int = 0) -> pd.DataFrame:
    """A label-stratified sample of about ``n`` written rows (or the fraction ``n`` < 1).

    Augmented rows come along with the written message they were made from. ``None``
    (or ``n`` at least the corpus size) returns ``corpus`` unchanged.
    """
    if n is None:
        return corpus
    written = corpus[corpus["source"] != "augmented"]
    fraction = float(n) if n < 1 else n / max(len(written), 1)
    if fraction >= 1:
        return corpus
    picked = written.groupby("label", group_keys=False).apply(
        lambda g: g.sample(n=max(1, int(round(len(g) * fraction))), random_state=seed)
    )
    keep = corpus.index.isin(picked.index)
    if "origin" in corpus:
        keep |= (corpus["source"] == "augmented") & corpus["origin"].isin(set(picked["text"]))
    return corpus[keep].reset_index(drop=True)


def message_lengths(corpus: pd.DataFrame) -> pd.Series:
    """Characters per message."""
    return corpus["text"].str.len().rename("length")


def label_table(corpus: pd.DataFrame) -> pd.DataFrame:
    """Messages per label (taxonomy order) and source, with the label's Chinese name and a total."""
    table = pd.crosstab(corpus["label"], corpus["source"])
    table = table.reindex(list(knowledge.labels()), fill_value=0)
    table.insert(0, "name", [knowledge.info(lab).name for lab in table.index])
    table["total"] = table.drop(columns="name").sum(axis=1)
    table.columns.name = None
    return table


def top_terms(corpus: pd.DataFrame, k: int = 10, min_count: int = 5, analyze=None, min_length: int = 2) -> pd.DataFrame:
    """The ``k`` words most typical of each label: z-scored log-odds against all other labels.

    The z-score (log-odds ratio over its standard error) favours words that are both
    frequent in the label and rare elsewhere over words seen a handful of times.

    Words come from the model's own segmentation (``ComplaintClassifier.terms``, word
    unigrams only). Returns a long table: ``label``, ``term``, ``count`` (messages of the
    label containing the word), ``share`` (of the label's messages) and ``score``.
    """
    if analyze is None:
        from .model import ComplaintClassifier

        analyze = ComplaintClassifier().terms
    per_label: dict[str, Counter] = {}
    totals: Counter = Counter()
    for text, label in zip(corpus["text"], corpus["label"]):
        words = {t[len(WORD):] for t in analyze(text)
                 if t.startswith(WORD) and " " not in t and len(t) - len(WORD) >= min_length}
        per_label.setdefault(label, Counter()).update(words)
        totals.update(words)
    sizes = corpus["label"].value_counts()
    n_all = len(corpus)
    rows = []
    for label in [lab for lab in knowledge.labels() if lab in per_label]:
        n_in, n_out = int(sizes[label]), n_all - int(sizes[label])
        scored = []
        for word, count in per_label[label].items():
            if count < min_count:
                continue
            rest = totals[word] - count
            a, b, c, d = count + 0.5, n_in - count + 0.5, rest + 0.5, n_out - rest + 0.5
            score = (math.log(a / b) - math.log(c / d)) / math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
            scored.append((score, count, word))
        for score, count, word in sorted(scored, key=lambda s: (-s[0], -s[1], s[2]))[:k]:
            rows.append({"label": label, "term": word, "count": count, "share": count / n_in, "score": round(score, 4)})
    return pd.DataFrame(rows, columns=["label", "term", "count", "share", "score"])


# -- scores ------------------------------------------------------------------------------------
def per_label_frame(result: dict) -> pd.DataFrame:
    """A score dict's ``per_label`` as a table (taxonomy order) with the Chinese names."""
    per_label = result["per_label"]
    order = [lab for lab in knowledge.labels() if lab in per_label]
    frame = pd.DataFrame([per_label[lab] for lab in order], index=pd.Index(order, name="label"))
    frame.insert(0, "name", [knowledge.info(lab).name for lab in order])
    return frame


def compare_scores(old: dict, new: dict, tolerance: float = 0.005) -> pd.DataFrame:
    """Per-label F1 of two score dicts side by side: ``f1_old``, ``f1_new``, ``delta``, ``change``.

    Labels present in either are listed in taxonomy order; a label missing from one side
    counts as F1 0 there. ``change`` is ``better`` / ``worse`` when ``|delta|`` exceeds
    ``tolerance``, else ``same``. ``support`` is taken from ``new`` (else ``old``).
    """
    old_pl, new_pl = old["per_label"], new["per_label"]
    order = [lab for lab in knowledge.labels() if lab in old_pl or lab in new_pl]
    rows = []
    for lab in order:
        f_old = float(old_pl.get(lab, {}).get("f1", 0.0))
        f_new = float(new_pl.get(lab, {}).get("f1", 0.0))
        delta = f_new - f_old
        change = "better" if delta > tolerance else "worse" if delta < -tolerance else "same"
        support = new_pl.get(lab, old_pl.get(lab, {})).get("support", 0)
        rows.append({"label": lab, "name": knowledge.info(lab).name, "support": int(support),
                     "f1_old": f_old, "f1_new": f_new, "delta": delta, "change": change})
    frame = pd.DataFrame(rows, columns=["label", "name", "support", "f1_old", "f1_new", "delta", "change"])
    frame.attrs["macro_f1_old"] = float(old.get("macro_f1", np.nan))
    frame.attrs["macro_f1_new"] = float(new.get("macro_f1", np.nan))
    return frame.set_index("label")


def summarize_comparison(comparison: pd.DataFrame) -> str:
    """One line per direction: which labels got better or worse, and the macro-F1 change."""
    lines = []
    old, new = comparison.attrs.get("macro_f1_old"), comparison.attrs.get("macro_f1_new")
    if old is not None and new is not None and not (np.isnan(old) or np.isnan(new)):
        lines.append(f"macro-F1 {old:.3f} -> {new:.3f} ({new - old:+.3f})")
    for change in ("better", "worse"):
        part = comparison[comparison["change"] == change].sort_values("delta", ascending=change == "worse")
        items = ", ".join(f"{lab} {row.delta:+.3f}" for lab, row in part.iterrows())
        lines.append(f"{change} ({len(part)}): {items or '-'}")
    lines.append(f"same: {int((comparison['change'] == 'same').sum())}")
    return "\n".join(lines)


# -- training ----------------------------------------------------------------------------------
CV_CACHE_DIR = Path(tempfile.gettempdir()) / "complaint-classifier-cv"
_CV_ARRAYS = ("probabilities", "predictions", "index", "fold")


def _code_fingerprint() -> str:
    """A hash of the package's code and resources: a cached result is stale when they change."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".toml", ".txt", ".tsv"} and "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cv_cache_key(corpus: pd.DataFrame, params: dict | None, folds: int, seed: int) -> str:
    """What a cross-validation result depends on: rows (with source and origin), parameters, code, libraries."""
    from .artifact import library_versions

    digest = hashlib.sha256()
    for column in ("text", "label", "source", "origin"):
        values = corpus[column].fillna("").astype(str) if column in corpus else pd.Series([""] * len(corpus))
        digest.update("\x1f".join(values).encode("utf-8") + b"\x1e")
    key = {"params": params or {}, "folds": folds, "seed": seed, "versions": library_versions(), "code": _code_fingerprint()}
    digest.update(json.dumps(key, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def cross_validate_cached(corpus: pd.DataFrame, params: dict | None = None, folds: int = 5, seed: int = 0,
                          cache_dir=CV_CACHE_DIR) -> dict:
    """``training.cross_validate``, reusing an earlier identical run saved in ``cache_dir``.

    The cache key covers the rows in order, ``params``, ``folds``, ``seed``, the package's
    code and the library versions, so a changed input never hits a stale result. Notebooks
    02 and 03 share one run this way. ``cache_dir=None`` always recomputes.
    """
    from .training import cross_validate

    path = Path(cache_dir) / f"cv-{cv_cache_key(corpus, params, folds, seed)}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                result = json.loads(data["scores"].tobytes().decode("utf-8"))
                result.update({name: data[name] for name in _CV_ARRAYS})
            result["cached"] = str(path)
            return result
        except (OSError, ValueError, KeyError):
            pass  # unreadable: recompute and overwrite
    result = cross_validate(corpus, params, folds=folds, seed=seed)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            scores_part = {k: v for k, v in result.items() if k not in _CV_ARRAYS}
            arrays = {name: np.asarray(result[name]) for name in _CV_ARRAYS}
            arrays["predictions"] = arrays["predictions"].astype(str)
            arrays["scores"] = np.frombuffer(json.dumps(scores_part).encode("utf-8"), dtype=np.uint8)
            from .artifact import atomic_write

            atomic_write(path, lambda fh: np.savez(fh, **arrays))
        except OSError:
            pass  # a cache that cannot be written only costs time
    return result


# -- error analysis ----------------------------------------------------------------------------
def out_of_fold(corpus: pd.DataFrame, cv: dict) -> pd.DataFrame:
    """The scored rows of a ``cross_validate`` result with their out-of-fold prediction.

    Columns: the corpus columns plus ``predicted``, ``probability`` (of the prediction),
    ``second`` (the runner-up label), ``p_true`` (probability of the gold label) and
    ``correct``; the index is the row's index in ``corpus``.
    """
    labels = np.asarray(knowledge.labels())
    proba = np.asarray(cv["probabilities"])
    rows = corpus.iloc[np.asarray(cv["index"])].copy()
    order = np.argsort(-proba, axis=1)
    rows["predicted"] = labels[order[:, 0]]
    rows["probability"] = proba[np.arange(len(proba)), order[:, 0]]
    rows["second"] = labels[order[:, 1]] if proba.shape[1] > 1 else ""
    gold = pd.Index(labels).get_indexer(rows["label"])
    rows["p_true"] = np.where(gold >= 0, proba[np.arange(len(proba)), np.maximum(gold, 0)], 0.0)
    rows["correct"] = rows["predicted"] == rows["label"]
    return rows


def misclassified(oof: pd.DataFrame, include_secondary: bool = True) -> pd.DataFrame:
    """Wrong out-of-fold predictions, most confident first.

    With ``include_secondary=False`` a prediction equal to the row's ``secondary`` label
    is not counted as wrong.
    """
    wrong = ~oof["correct"]
    if not include_secondary and "secondary" in oof:
        wrong &= oof["predicted"] != oof["secondary"]
    return oof[wrong].sort_values("probability", ascending=False)


def low_confidence(oof: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Out-of-fold predictions whose probability is under ``threshold``, least confident first."""
    return oof[oof["probability"] < threshold].sort_values("probability")


def confusions(oof: pd.DataFrame, top: int = 15) -> pd.DataFrame:
    """The most frequent (gold, predicted) mix-ups, with counts."""
    wrong = oof[~oof["correct"]]
    pairs = wrong.groupby(["label", "predicted"]).size().rename("count").reset_index()
    return pairs.sort_values(["count", "label", "predicted"], ascending=[False, True, True]).head(top).reset_index(drop=True)


def explain_rows(frame: pd.DataFrame, model, k: int = 5, label_column: str = "predicted",
                 column: str = "terms") -> pd.DataFrame:
    """``frame`` plus ``column``: the ``k`` terms of each text that pushed ``model`` toward its ``label_column``.

    The terms come from ``model.explain``, joined with ``、``; a label the model does not
    know gets an empty string.
    """
    known = set(map(str, model.classes_))
    out = frame.copy()
    out[column] = [
        "、".join(term for term, _ in model.explain(text, label=label, k=k)) if label in known else ""
        for text, label in zip(frame["text"], frame[label_column])
    ]
    return out


def review_sheet(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows for a person to check: ``REVIEW_COLUMNS`` with an empty ``correct_label``.

    A filled sheet goes back into training with ``train --extra`` or ``load_reviewed``.
    """
    out = pd.DataFrame(index=frame.index)
    for column in REVIEW_COLUMNS:
        out[column] = frame[column] if column in frame else ""
    if "probability" in frame:
        out["probability"] = frame["probability"].astype(float).round(3)
    out["correct_label"] = ""
    return out.reset_index(drop=True)


def write_review_sheet(sheet: pd.DataFrame, path) -> Path:
    """Write a review sheet as CSV (UTF-8 with BOM), TSV, XLSX or JSONL by ``path``'s extension."""
    from .tabular import TableWriter

    path = Path(path)
    with TableWriter(path, list(sheet.columns)) as writer:
        for values in sheet.itertuples(index=False):
            writer.write(["" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values])
    return path


# -- active selection ---------------------------------------------------------------------------
def selection_curve(corpus: pd.DataFrame, sizes=(250, 500, 1000, 2000, 4000), strategies=("uncertain", "random"),
                    seeds: int = 2, test_share: float = 0.2, real_weight: float | None = None, progress=None) -> dict:
    """What choosing messages to label buys: macro-F1 on held-out real rows against the number of real
    labelled rows in training, when they are chosen by each strategy of ``sampling.select``.

    A fixed share of the real rows (whole near-duplicate groups) is held out for scoring. For each
    seed, every strategy starts from the same ``sizes[0]`` random real rows and grows the set: ``uncertain``
    asks the model trained so far for the rows it is least sure of, ``random`` draws at random. Written
    rows are always in training, as in production. Returns ``sizes`` and, per strategy, the macro-F1 (mean over
    seeds, headline definition) at each size; ``progress(strategy, seed, size, f1)`` is called per point.
    """
    from .model import ComplaintClassifier
    from .sampling import select
    from .training import DEFAULT_REAL_WEIGHT, duplicate_groups, scores

    weight = DEFAULT_REAL_WEIGHT if real_weight is None else real_weight
    real = corpus[corpus["source"] == "real"].reset_index(drop=True)
    written = corpus[corpus["source"] != "real"].reset_index(drop=True)
    groups = duplicate_groups(real["text"].tolist())
    unique = np.unique(groups)
    held = set(np.random.default_rng(0).permutation(unique)[: int(len(unique) * test_share)])
    test = np.flatnonzero(np.isin(groups, list(held)))
    pool = np.flatnonzero(~np.isin(groups, list(held)))
    sizes = [s for s in sizes if s <= len(pool)]
    base = ComplaintClassifier()
    docs, written_docs = base.analyze(real["text"].tolist()), base.analyze(written["text"].tolist())
    gold = real["label"].iloc[test].tolist()
    result: dict = {"sizes": sizes, "test_rows": int(len(test)), "seeds": seeds, "written_rows": int(len(written))}
    for strategy in strategies:
        curves = []
        for seed in range(seeds):
            chosen = list(np.random.default_rng(seed).permutation(pool)[: sizes[0]])
            model, line = None, []
            for size in sizes:
                rest = np.setdiff1d(pool, chosen)
                if len(chosen) < size:
                    need = size - len(chosen)
                    proba = model.predict_proba_terms([docs[i] for i in rest]) if strategy != "random" else None
                    picked = select(real["text"].iloc[rest].tolist(), proba, need, strategy, seed=seed + size)
                    chosen += [int(rest[i]) for i in picked]
                y = written["label"].tolist() + real["label"].iloc[chosen].tolist()
                weights = np.r_[np.ones(len(written)), np.full(len(chosen), weight)]
                model = ComplaintClassifier().fit_terms(written_docs + [docs[i] for i in chosen], y, weights)
                predicted = model.classes_[model.predict_proba_terms([docs[i] for i in test]).argmax(axis=1)]
                line.append(scores(gold, [str(p) for p in predicted])["macro_f1"])
                if progress:
                    progress(strategy, seed, size, line[-1])
            curves.append(line)
        result[strategy] = np.mean(curves, axis=0).round(4).tolist()
    return result
