"""The notebooks: stored without outputs, and they run top to bottom; their library helpers.

The execution tests need the ``notebooks`` extra (nbclient, ipykernel, matplotlib) and
are skipped without it. They run the notebooks on a 3,000-message sample (a cell injected
after the parameters cell, as papermill does), with
``notebooks/`` as working directory; none of them writes into the repository.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classifier import analysis, knowledge
from classifier.training import brief, cross_validate, load_reviewed, scores, train

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
FIXTURES = Path(__file__).parent / "fixtures"
TEST_PARAMETERS = "SAMPLE = 3000  # injected by tests/test_notebooks.py\nCV_FOLDS = 3\nSIZES = [100, 200]\nSEEDS = 1"


def test_there_are_notebooks():
    names = {path.name for path in NOTEBOOKS}
    assert {"01_data_overview.ipynb", "02_train_and_evaluate.ipynb", "03_error_analysis.ipynb",
            "04_active_selection.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    notebook = json.loads(path.read_text("utf-8"))
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs: clear them before saving"
        assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_parameters_cell_first(path):
    notebook = json.loads(path.read_text("utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), f"{path.name}: first code cell is not tagged 'parameters'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    # Like papermill: a cell after the parameters cell overrides them, to keep the suite quick.
    first = next(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code")
    notebook.cells.insert(first + 1, nbformat.v4.new_code_cell(TEST_PARAMETERS))
    client = NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell and traceback
    errors = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors


# -- plots ----------------------------------------------------------------------------------------
@pytest.fixture()
def plots(monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from classifier import plots as module

    lookup = module.has_cjk  # cached per process: start and end each test with a fresh look
    lookup.cache_clear()
    with matplotlib.rc_context():  # setup_fonts changes rcParams: undo it after each test
        yield module
    lookup.cache_clear()
    plt.close("all")


def test_font_fallback_warns_and_uses_label_ids(plots, monkeypatch):
    monkeypatch.setattr(plots, "find_cjk_font", lambda candidates=None: None)
    with pytest.warns(plots.CJKFontWarning, match="label ids"):
        assert plots.setup_fonts() is None
    assert not plots.has_cjk()
    assert plots.label_name("counterfeit") == "counterfeit"


def test_unknown_font_names_are_not_found(plots):
    assert plots.find_cjk_font(["No Such Font 123"]) is None


def test_font_found_uses_chinese_names(plots, monkeypatch):
    import matplotlib

    monkeypatch.setattr(plots, "find_cjk_font", lambda candidates=None: "DejaVu Sans")
    with warnings.catch_warnings():
        warnings.simplefilter("error", plots.CJKFontWarning)
        assert plots.setup_fonts() == "DejaVu Sans"
    assert matplotlib.rcParams["font.sans-serif"][0] == "DejaVu Sans"
    assert plots.label_name("counterfeit") == f"{knowledge.info('counterfeit').name} (counterfeit)"


def test_installed_cjk_font_draws_chinese_names(plots, small_corpus, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", plots.CJKFontWarning)
        font = plots.setup_fonts()
    if font is None:
        pytest.skip("no CJK font installed (see notebooks/README.md)")
    fig = plots.label_counts(small_corpus)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Glyph .* missing")
        fig.savefig(tmp_path / "counts.png", dpi=40)
    names = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert names[0] == f"{knowledge.info(knowledge.labels()[0]).name} ({knowledge.labels()[0]})"


def _result(y_true, y_pred):
    return scores(y_true, y_pred)


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # terms stay Chinese without a CJK font
def test_figures_draw(plots, small_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "has_cjk", lambda: False)  # label ids: no font needed
    result = _result(["fraud", "fraud", "other", "late_shipment"], ["fraud", "other", "other", "late_shipment"])
    old = _result(["fraud", "fraud", "other", "late_shipment"], ["other", "other", "other", "late_shipment"])
    figures = [
        plots.label_counts(small_corpus),
        plots.length_histogram(small_corpus),
        plots.length_by_label(small_corpus),
        plots.source_counts(small_corpus),
        plots.top_terms_grid(analysis.top_terms(small_corpus, k=3, min_count=1)),
        plots.confusion_heatmap(result),
        plots.f1_bars(result),
        plots.f1_delta(analysis.compare_scores(old, result)),
        plots.selection_curve({"sizes": [100, 200, 400], "uncertain": [0.4, 0.5, 0.6], "random": [0.4, 0.45, 0.5],
                               "test_rows": 50}),
    ]
    for i, fig in enumerate(figures):
        fig.savefig(tmp_path / f"{i}.png", dpi=40)
        assert (tmp_path / f"{i}.png").stat().st_size > 0
    heatmap = figures[5].axes[0]
    assert [t.get_text() for t in heatmap.get_yticklabels()] == result["labels"]


# -- analysis -------------------------------------------------------------------------------------
def _per_label(f1s: dict) -> dict:
    return {"macro_f1": float(np.mean(list(f1s.values()))),
            "per_label": {lab: {"f1": f, "support": 10} for lab, f in f1s.items()}}


def test_compare_scores_computes_f1_deltas():
    old = _per_label({"fraud": 0.5, "other": 0.9, "late_shipment": 0.8})
    new = _per_label({"fraud": 0.75, "other": 0.7, "late_shipment": 0.802, "logistics": 0.6})
    table = analysis.compare_scores(old, new)
    # taxonomy order, labels from either side
    assert list(table.index) == [lab for lab in knowledge.labels() if lab in {"fraud", "other", "late_shipment", "logistics"}]
    assert table.loc["fraud", "delta"] == pytest.approx(0.25)
    assert table.loc["other", "delta"] == pytest.approx(-0.2)
    assert table.loc["logistics", "f1_old"] == 0.0 and table.loc["logistics", "delta"] == pytest.approx(0.6)
    assert table["change"].to_dict() == {"fraud": "better", "other": "worse", "late_shipment": "same", "logistics": "better"}
    assert table.loc["fraud", "name"] == knowledge.info("fraud").name
    assert table.attrs["macro_f1_new"] - table.attrs["macro_f1_old"] == pytest.approx(
        np.mean([0.75, 0.7, 0.802, 0.6]) - np.mean([0.5, 0.9, 0.8]))
    summary = analysis.summarize_comparison(table)
    assert "better (2): logistics +0.600, fraud +0.250" in summary
    assert "worse (1): other -0.200" in summary


def test_compare_scores_accepts_score_dicts():
    y = ["fraud", "fraud", "other", "other"]
    old, new = scores(y, ["fraud", "other", "other", "other"]), scores(y, y)
    table = analysis.compare_scores(old, new)
    assert table.loc["fraud", "f1_old"] == pytest.approx(2 / 3)
    assert table.loc["fraud", "delta"] == pytest.approx(1 / 3)
    assert (table["f1_new"] == 1.0).all()


def test_top_terms_finds_label_specific_words():
    corpus = pd.DataFrame({
        "text": ["快递太慢了"] * 6 + ["商品是假货"] * 6,
        "label": ["logistics"] * 6 + ["counterfeit"] * 6,
    })
    analyze = lambda text: ["w:快递", "w:太慢"] if "快递" in text else ["w:假货", "w:商品"]
    table = analysis.top_terms(corpus, k=2, analyze=analyze)
    assert set(table[table["label"] == "logistics"]["term"]) == {"快递", "太慢"}
    assert set(table[table["label"] == "counterfeit"]["term"]) == {"假货", "商品"}
    assert (table["count"] == 6).all() and (table["share"] == 1.0).all()


def test_subsample_is_stratified_and_keeps_augmented_variants():
    corpus = pd.DataFrame({
        "text": [f"a{i}" for i in range(40)] + [f"b{i}" for i in range(20)] + ["a0 变体"],
        "label": ["fraud"] * 40 + ["other"] * 20 + ["fraud"],
        "source": ["written"] * 60 + ["augmented"],
        "origin": [""] * 60 + ["a0"],
    })
    assert analysis.subsample(corpus, None) is corpus
    assert analysis.subsample(corpus, 1000) is corpus
    half = analysis.subsample(corpus, 0.5, seed=1)
    written = half[half["source"] == "written"]
    assert written["label"].value_counts().to_dict() == {"fraud": 20, "other": 10}
    assert ("a0 变体" in set(half["text"])) == ("a0" in set(half["text"]))
    assert len(analysis.subsample(corpus, 30)[lambda f: f["source"] == "written"]) == 30


def test_error_analysis_and_review_sheet_round_trip(small_corpus, small_model, tmp_path):
    cv = cross_validate(small_corpus, {"min_df": 1}, folds=2)
    oof = analysis.out_of_fold(small_corpus, cv)
    assert len(oof) == cv["written"]["n"] == len(small_corpus)
    assert (oof["correct"] == (oof["predicted"] == oof["label"])).all()
    assert oof["probability"].between(0, 1).all() and (oof["p_true"] <= oof["probability"] + 1e-9).all()
    assert (oof["predicted"] != oof["second"]).all()
    wrong = analysis.misclassified(oof)
    assert not wrong["correct"].any() and wrong["probability"].is_monotonic_decreasing
    unsure = analysis.low_confidence(oof, 0.6)
    assert (unsure["probability"] < 0.6).all() and unsure["probability"].is_monotonic_increasing
    pairs = analysis.confusions(oof)
    assert pairs["count"].sum() == len(wrong)

    rows = analysis.explain_rows(oof.head(5), small_model)
    rows = analysis.explain_rows(rows, small_model, label_column="label", column="terms_gold")
    assert rows["terms"].map(bool).any()
    first = rows.iloc[0]
    assert first["terms"] == "、".join(t for t, _ in small_model.explain(first["text"], label=first["predicted"], k=5))

    sheet = analysis.review_sheet(rows)
    assert list(sheet.columns) == analysis.REVIEW_COLUMNS and (sheet["correct_label"] == "").all()
    for suffix in (".csv", ".xlsx"):
        path = analysis.write_review_sheet(sheet, tmp_path / f"review{suffix}")
        assert path.is_file()
        assert load_reviewed(path).empty  # nothing reviewed yet
    filled = sheet.copy()
    filled.loc[0, "correct_label"] = "other"
    reviewed = load_reviewed(analysis.write_review_sheet(filled, tmp_path / "filled.xlsx"))
    assert reviewed[["text", "label"]].values.tolist() == [[sheet.loc[0, "text"], "other"]]


def test_train_reuses_a_given_cross_validation(small_corpus):
    cv = cross_validate(small_corpus, {"min_df": 1}, folds=2)
    model, metadata = train(small_corpus, {"min_df": 1}, cv=cv)
    assert metadata["cross_validation"]["written"]["macro_f1"] == cv["written"]["macro_f1"]
    assert metadata["cross_validation"]["folds"] == 2 and "real" not in metadata["cross_validation"]
    assert model.review_threshold == cv["review_threshold"] and model.dispute_threshold == cv["dispute_threshold"]
    assert model.temperature_ == cv["temperature"] > 0
    assert metadata["training_rows"] == len(small_corpus)
    assert brief(cv["written"]).keys() == {"n", "macro_f1", "labels_scored", "macro_f1_all", "accuracy",
                                           "calibration_error", "calibration_error_uncalibrated", "per_label"}


def test_train_only_rows_are_trained_on_and_never_scored(small_corpus):
    added = np.arange(len(small_corpus)) % 4 == 0
    cv = cross_validate(small_corpus, {"min_df": 1}, folds=2, train_only=added)
    assert set(cv["index"]) == set(np.flatnonzero(~added)) and cv["written"]["n"] == int((~added).sum())
    without = cross_validate(small_corpus[~added].reset_index(drop=True), {"min_df": 1}, folds=2)
    assert not np.allclose(cv["probabilities"], without["probabilities"])  # the added rows were learnt from


def test_label_table_and_per_label_frame(small_corpus):
    table = analysis.label_table(small_corpus)
    assert list(table.index) == list(knowledge.labels())
    assert table["total"].sum() == len(small_corpus)
    frame = analysis.per_label_frame(scores(["fraud", "other"], ["fraud", "fraud"]))
    assert list(frame.index) == ["fraud", "other"] and frame.loc["other", "f1"] == 0.0


def test_cross_validate_cached_reuses_only_identical_runs(small_corpus, tmp_path, monkeypatch):
    from classifier import training

    calls = []
    real = training.cross_validate
    monkeypatch.setattr(training, "cross_validate", lambda *a, **k: calls.append(1) or real(*a, **k))
    params = {"min_df": 1}
    first = analysis.cross_validate_cached(small_corpus, params, folds=2, cache_dir=tmp_path)
    again = analysis.cross_validate_cached(small_corpus, params, folds=2, cache_dir=tmp_path)
    assert len(calls) == 1 and "cached" not in first and again["cached"].startswith(str(tmp_path))
    np.testing.assert_array_equal(again["probabilities"], first["probabilities"])
    np.testing.assert_array_equal(again["predictions"], first["predictions"])
    np.testing.assert_array_equal(again["index"], first["index"])
    assert {k: again[k] for k in ("written", "folds", "seed", "temperature")} == \
        {k: first[k] for k in ("written", "folds", "seed", "temperature")}
    analysis.out_of_fold(small_corpus, again)  # usable like a fresh result

    changed = small_corpus.copy()
    changed.loc[0, "label"] = "logistics" if changed.loc[0, "label"] != "logistics" else "other"
    analysis.cross_validate_cached(changed, params, folds=2, cache_dir=tmp_path)
    analysis.cross_validate_cached(small_corpus, params, folds=2, seed=1, cache_dir=tmp_path)
    analysis.cross_validate_cached(small_corpus, params, folds=2, cache_dir=None)
    assert len(calls) == 4


def test_selection_curve_grows_from_a_shared_random_start(small_corpus):
    corpus = small_corpus.copy()
    corpus.loc[: len(corpus) // 2, "source"] = "real"  # half of the fixture plays the real labelled rows
    points = []
    curve = analysis.selection_curve(corpus, sizes=[4, 8], seeds=1, test_share=0.3,
                                     progress=lambda *point: points.append(point))
    assert curve["sizes"] == [4, 8] and len(curve["uncertain"]) == len(curve["random"]) == 2
    assert all(0 <= f1 <= 1 for f1 in curve["uncertain"] + curve["random"])
    assert [p[:3] for p in points] == [("uncertain", 0, 4), ("uncertain", 0, 8), ("random", 0, 4), ("random", 0, 8)]
    assert points[0][3] == points[2][3]  # both strategies start from the same random rows
