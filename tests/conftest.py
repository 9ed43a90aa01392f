"""Shared fixtures: a small model trained on tests/fixtures/train_small.csv."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from classifier import ComplaintClassifier, artifact
from classifier.training import load_corpus

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def small_corpus():
    return load_corpus([FIXTURES / "train_small.csv"])


@pytest.fixture(scope="session")
def small_model(small_corpus):
    return ComplaintClassifier(min_df=1).fit(small_corpus["text"].tolist(), small_corpus["label"].tolist())


@pytest.fixture(scope="session")
def small_model_path(small_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.npz"
    artifact.save(small_model, path, {"note": "test fixture"})
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))
