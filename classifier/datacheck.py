"""Checks a training corpus must pass: ids, emptiness, duplicates, minimums, augmented share,
near-duplicates, and no overlap with a held-out evaluation set; and checks of the real labelled
data (two annotations per row, a known outcome, a pool id)."""
from __future__ import annotations

from collections import Counter, defaultdict

from . import knowledge
from .text import normalize

MIN_PER_DISPUTE_LABEL = 300
MIN_OTHER = 2000
MAX_AUGMENTED_SHARE = 0.30
NEAR_DUPLICATE_JACCARD = 0.8
MAX_NEAR_DUPLICATE_RATE = 0.02


def grams(text: str, n: int = 4) -> set[str]:
    """Character ``n``-grams of the normalised text (the whole text when shorter)."""
    text = normalize(text).replace(" ", "")
    return {text[i : i + n] for i in range(max(1, len(text) - n + 1))}


def near_duplicates(texts: list[str], others: list[str] | None = None,
                    threshold: float = NEAR_DUPLICATE_JACCARD, max_posting: int = 300) -> list[tuple[int, int, float]]:
    """Pairs (i, j, jaccard) above ``threshold``: within ``texts``, or between ``texts`` and ``others``.

    Uses an inverted index of 4-grams; grams found in more than ``max_posting`` texts are
    skipped as candidates (a pair above 0.8 always shares rarer grams too).
    """
    left = [grams(t) for t in texts]
    right = left if others is None else [grams(t) for t in others]
    index: dict[str, list[int]] = defaultdict(list)
    for j, g in enumerate(right):
        for gram in g:
            index[gram].append(j)
    pairs = []
    for i, g in enumerate(left):
        shared: Counter = Counter()
        for gram in g:
            posting = index[gram]
            if len(posting) <= max_posting:
                shared.update(posting)
        for j, count in shared.items():
            if others is None and j <= i:
                continue
            jaccard = count / (len(g) + len(right[j]) - count)
            if jaccard > threshold:
                pairs.append((i, j, round(jaccard, 3)))
    return pairs


OUTCOMES = ("agreed", "adjudicated", "dropped")


def check_real(table) -> list[str]:
    """Problems of a real labelled table (``data/real/*.csv`` read as strings): every row has a pool id,
    two annotations from the label set, an outcome, and a final label that follows from them."""
    valid = set(knowledge.labels())
    problems = []
    for column in ("id", "annotator_a", "annotator_b", "outcome", "label"):
        if column not in table.columns:
            return [f"missing column {column!r}"]
    if table["id"].duplicated().any():
        problems.append(f"{int(table['id'].duplicated().sum())} duplicate pool ids")
    for column in ("annotator_a", "annotator_b"):
        bad = table[~table[column].isin(valid)]
        if len(bad):
            problems.append(f"{len(bad)} rows with an unknown {column} label, e.g. {bad.iloc[0]['id']}")
    bad = table[~table["outcome"].isin(OUTCOMES)]
    if len(bad):
        problems.append(f"{len(bad)} rows with an unknown outcome, e.g. {bad.iloc[0]['outcome']!r}")
    agreed = table[table["outcome"] == "agreed"]
    if (agreed["annotator_a"] != agreed["annotator_b"]).any() or (agreed["label"] != agreed["annotator_a"]).any():
        problems.append("an 'agreed' row whose annotations or final label differ")
    adjudicated = table[table["outcome"] == "adjudicated"]
    if (adjudicated["annotator_a"] == adjudicated["annotator_b"]).any():
        problems.append("an 'adjudicated' row whose two annotations agree")
    if (table.loc[table["outcome"] != "dropped", "label"] == "").any():
        problems.append("a kept row without a final label")
    return problems


def check_corpus(corpus, held_out_texts: list[str] | None = None) -> dict:
    """Measure ``corpus`` (a ``load_corpus`` table) against the corpus rules; ``problems`` lists failures.

    The minimums, the augmented share and the near-duplicate rate apply to what we wrote; exact
    duplicates and the overlap with ``held_out_texts`` to every row."""
    texts = corpus["text"].tolist()
    written = corpus[corpus["source"] != "real"]
    counts = written["label"].value_counts().to_dict()
    problems = []
    for label in knowledge.labels():
        minimum = MIN_OTHER if label == "other" else MIN_PER_DISPUTE_LABEL
        if counts.get(label, 0) < minimum:
            problems.append(f"{label}: {counts.get(label, 0)} messages, fewer than {minimum}")
    augmented = written.groupby("label")["source"].apply(lambda s: float((s == "augmented").mean())).to_dict()
    problems += [f"{label}: augmented share {share:.0%} over {MAX_AUGMENTED_SHARE:.0%}"
                 for label, share in augmented.items() if share > MAX_AUGMENTED_SHARE]
    duplicates = [t for t, n in Counter(texts).items() if n > 1]
    if duplicates:
        problems.append(f"{len(duplicates)} exact duplicate texts, e.g. {duplicates[0][:30]!r}")
    near = near_duplicates(written["text"].tolist())
    involved = {i for i, _, _ in near} | {j for _, j, _ in near}
    near_rate = len(involved) / max(1, len(written))
    if near_rate > MAX_NEAR_DUPLICATE_RATE:
        problems.append(f"near-duplicate rate {near_rate:.1%} over {MAX_NEAR_DUPLICATE_RATE:.0%}")
    report = {"rows": len(texts), "counts": counts, "augmented_share": augmented, "exact_duplicates": len(duplicates),
              "near_duplicate_pairs": len(near), "near_duplicate_rate": near_rate, "problems": problems}
    if held_out_texts is not None:
        held = {normalize(t) for t in held_out_texts}
        exact = sum(normalize(t) in held for t in texts)
        overlap = near_duplicates(texts, held_out_texts)
        report.update(held_out_exact=exact, held_out_near=len(overlap))
        if exact or overlap:
            problems.append(f"overlap with the held-out set: {exact} exact, {len(overlap)} near")
    return report
