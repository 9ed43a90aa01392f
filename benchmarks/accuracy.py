"""Accuracy: cross-validation on our data and the score on real buyer text, side by side.

    python benchmarks/accuracy.py                 # the shipped configuration: CV + real dev set
    python benchmarks/accuracy.py --compare       # logistic regression vs calibrated linear SVM (same folds)

The real set is ../shared/eval/dev_real.csv, scored with ../shared/tools/score.py's headline
(macro-F1 over labels with at least 5 gold items) and its chat false-alarm rate.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

from classifier import ComplaintClassifier  # noqa: E402
from classifier.training import cross_validate, load_corpus, scores  # noqa: E402


def real_score(model) -> dict:
    """Predict the real dev set and score it with the shared score.py."""
    gold = SHARED / "eval" / "dev_real.csv"
    with open(gold, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    predicted = model.predict([r["text"] for r in rows])
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "label"])
        writer.writerows([r["id"], p] for r, p in zip(rows, predicted))
    out = subprocess.run([sys.executable, str(SHARED / "tools" / "score.py"), str(gold), fh.name, "--json"],
                         check=True, capture_output=True, text=True).stdout
    Path(fh.name).unlink()
    return json.loads(out)


def compare(corpus, folds: int) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import LinearSVC

    analyzer = ComplaintClassifier()
    docs = np.array([analyzer.analyze(t) for t in corpus["text"]], dtype=object)
    y = corpus["label"].to_numpy()
    candidates = {
        "logistic regression C=10": lambda: LogisticRegression(C=10, max_iter=3000),
        "logistic regression C=20 (shipped)": lambda: LogisticRegression(C=20, max_iter=3000),
        "calibrated LinearSVC C=1": lambda: CalibratedClassifierCV(LinearSVC(C=1), cv=3, ensemble=False),
    }
    for name, make in candidates.items():
        predicted = np.empty_like(y)
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(docs, y):
            vectorizer = TfidfVectorizer(analyzer=lambda d: d, min_df=analyzer.min_df,
                                         max_df=analyzer.max_df, sublinear_tf=True)
            clf = make().fit(vectorizer.fit_transform(docs[train]), y[train])
            predicted[test] = clf.predict(vectorizer.transform(docs[test]))
        print(f"| {name} | {scores(list(y), list(predicted))['macro_f1']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    corpus = load_corpus([ROOT / "data" / "messages"])
    if args.compare:
        compare(corpus, args.folds)
        return
    cv = cross_validate(corpus, folds=args.folds)
    model = ComplaintClassifier().fit(corpus["text"].tolist(), corpus["label"].tolist())
    real = real_score(model)
    print(f"cross-validated macro-F1 ({args.folds} folds, n={cv['n']}): {cv['macro_f1']:.3f}")
    print(f"real dev macro-F1 (labels with >= 5 gold): {real['macro_f1']:.3f}; chat false alarm "
          f"{real['chat_false_alarm']:.3f}; accuracy {real['accuracy']:.3f}")
    print("| label | CV F1 | real F1 | real n |")
    print("|---|---:|---:|---:|")
    for label, r in cv["per_label"].items():
        dev = real["per_label"].get(label, {})
        print(f"| {label} | {r['f1']:.3f} | {dev.get('f1', float('nan')):.3f} | {dev.get('support', 0)} |")
    print("top confusions on the real set (gold -> predicted):")
    for (gold, pred), n in real["top_confusions"][:10]:
        print(f"  {n:4d}  {gold} -> {pred}")


if __name__ == "__main__":
    main()
