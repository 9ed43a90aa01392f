import numpy as np
import pytest

from classifier import ComplaintClassifier, knowledge
from classifier.features import Vectorizer, prefixed


def test_predict_proba_shape_and_sum(small_model):
    proba = small_model.predict_proba(["还没发货", "在吗", ""])
    assert proba.shape == (3, len(small_model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(small_model.predict(["还没发货"])) <= set(small_model.classes_)


@pytest.mark.parametrize("max_count", [1, 1000])
def test_vectorizer_and_scores_match_scikit_learn(small_corpus, max_count):
    """Our TF-IDF rows and NumPy scoring equal scikit-learn's TfidfVectorizer and predict_proba, with counts
    uncapped (sublinear tf) or capped at 1 (binary)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    model = ComplaintClassifier(min_df=1, max_count=max_count)
    binary = max_count == 1
    texts, y = small_corpus["text"].tolist(), small_corpus["label"].tolist()
    docs = model.analyze(texts)
    model.fit_terms(docs, y)
    reference = TfidfVectorizer(analyzer=prefixed, min_df=1, max_df=int(model.max_df * len(docs)),
                                sublinear_tf=not binary, binary=binary)
    X = reference.fit_transform(docs)
    assert sorted(reference.vocabulary_) == model.vectorizer_.terms_
    probe = model.analyze(["快递一直不更新，还没发货？？", "掉色了，质量太差掉色了", "谢谢"])
    ours = model.vectorizer_.transform(probe).to_scipy().toarray()
    theirs = reference.transform(probe).toarray()[:, [reference.vocabulary_[t] for t in model.vectorizer_.terms_]]
    filled = ours.any(axis=1)  # a row with only form terms is left empty on purpose
    np.testing.assert_allclose(ours[filled], theirs[filled], atol=1e-6)
    classifier = LogisticRegression(C=model.C, max_iter=3000).fit(X, y)
    expected = classifier.predict_proba(reference.transform(probe))
    np.testing.assert_allclose(model.predict_proba_terms(probe)[filled], expected[filled], atol=1e-4)


def test_chunked_path_equals_one_message_at_a_time(small_model, small_corpus):
    texts = small_corpus["text"].tolist() + ["", "The item arrived broken", "真的很生气" * 30, "發貨了嗎？"]
    chunk = small_model.predict_proba(texts)
    single = np.vstack([small_model.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(chunk, single, atol=1e-6)


def test_sparse_rows_dot_handles_empty_rows():
    from classifier.features import SparseRows

    rows = SparseRows(np.array([0, 0, 2, 2, 3]), np.array([0, 2, 1], dtype=np.int32),
                      np.array([1.0, 2.0, 3.0], dtype=np.float32), 3)
    weights = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_allclose(rows.dot(weights), rows.to_scipy() @ weights)


def test_training_is_deterministic(small_corpus):
    texts, y = small_corpus["text"].tolist(), small_corpus["label"].tolist()
    probe = ["发货太慢了", "物流不动", "好的", "坏了"]
    a = ComplaintClassifier(min_df=1).fit(texts, y)
    b = ComplaintClassifier(min_df=1).fit(texts, y)
    np.testing.assert_array_equal(a.predict_proba(probe), b.predict_proba(probe))
    assert a.vectorizer_.terms_ == b.vectorizer_.terms_


def test_classify_output(small_model):
    prediction = small_model.classify(["拍了五天了还不发货"], k=3)[0]
    assert prediction.label in small_model.classes_
    assert prediction.name == knowledge.info(prediction.label).name
    assert len(prediction.top) == 3 and prediction.top[0][1] >= prediction.top[1][1] >= prediction.top[2][1]
    other = list(small_model.classes_).index("other")
    assert prediction.dispute_probability == pytest.approx(1 - small_model.predict_proba(["拍了五天了还不发货"])[0, other],
                                                           abs=1e-5)
    assert prediction.rule == knowledge.info(prediction.label).rule and prediction.advice
    assert len(prediction.top_terms) <= 5 and not any(t.startswith(("len", "m:")) for t in prediction.top_terms)
    record = prediction.to_dict()
    assert {"label", "name", "probability", "dispute_probability", "is_dispute", "top", "needs_review",
            "review_reasons", "top_terms", "rule", "advice", "status"} <= set(record)


def test_dispute_threshold_decides_between_other_and_the_best_dispute(small_model):
    text = ["还没发货"]
    p = small_model.classify(text)[0]
    assert p.is_dispute == (p.dispute_probability >= small_model.dispute_threshold)
    strict = _with(small_model, dispute_threshold=min(1.0, p.dispute_probability + 0.01))
    lenient = _with(small_model, dispute_threshold=max(0.0, p.dispute_probability - 0.01))
    assert strict.classify(text)[0].label == "other" and not strict.classify(text)[0].is_dispute
    assert lenient.classify(text)[0].label != "other" and lenient.classify(text)[0].is_dispute


def test_blank_messages_are_empty_not_labelled(small_model):
    for text in ["", "   ", "\n\t"]:
        prediction = small_model.classify([text])[0]
        assert prediction.status == "empty" and prediction.label == "" and not prediction.needs_review


def test_messages_the_model_cannot_read_need_review_with_a_reason(small_model):
    english, no_terms, repeated = small_model.classify(
        ["The item arrived broken and I want a refund", "😀😀", "还没发货" + "真的很生气" * 20])
    assert english.needs_review and "little_chinese" in english.review_reasons
    assert no_terms.needs_review and "no_known_term" in no_terms.review_reasons
    assert repeated.needs_review and "repetitive" in repeated.review_reasons


def test_repetition_does_not_drown_the_complaint(small_model):
    """Term counts are capped (``max_count``): a phrase repeated 20 times weighs as much as 3 times."""
    assert small_model.max_count == 3
    three, twenty = small_model.predict_proba(["还没发货 " + "真的很生气" * 3, "还没发货 " + "真的很生气" * 20])
    np.testing.assert_allclose(three, twenty, atol=1e-5)


def test_review_threshold_controls_needs_review(small_model):
    text = ["还没发货"]
    p = small_model.classify(text)[0].probability
    assert _with(small_model, review_threshold=min(1.0, p + 0.01)).classify(text)[0].needs_review


def test_explain_returns_terms_of_the_text(small_model):
    terms = small_model.explain("衣服洗了就掉色", label="quality_defect")
    assert terms and all(weight > 0 for _, weight in terms)
    assert any(term in "衣服洗了就掉色" for term, _ in terms)


def test_crossed_terms_tell_a_question_from_a_problem(small_model):
    question, problem = (set(small_model.terms(t)) for t in ("发票怎么开", "发票一直没寄过来"))
    assert "x:q|发票" in question and "x:p|发票" in problem
    assert not any(t.startswith("x:") for t in ComplaintClassifier(crossed_terms=False).terms("发票怎么开"))


def test_errors():
    model = ComplaintClassifier()
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(["x"])
    with pytest.raises(TypeError, match="single str"):
        model.fit("abc", ["other"])
    with pytest.raises(ValueError, match="unknown label"):
        model.fit(["a", "b"], ["other", "nonsense"])
    with pytest.raises(ValueError, match="differ in length"):
        model.fit(["a", "b"], ["other"])
    with pytest.raises(ValueError, match="invalid parameter"):
        model.set_params(gamma=1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        model.set_params(review_threshold=1.5)


def test_params_round_trip():
    model = ComplaintClassifier(C=3.0, min_df=1)
    assert model.get_params()["C"] == 3.0
    assert ComplaintClassifier(**model.get_params()).get_params() == model.get_params()


def test_sample_weights_change_the_fit(small_corpus):
    texts, y = small_corpus["text"].tolist(), small_corpus["label"].tolist()
    plain = ComplaintClassifier(min_df=1).fit(texts, y)
    weights = np.where(np.asarray(y) == "other", 5.0, 1.0)
    weighted = ComplaintClassifier(min_df=1).fit(texts, y, sample_weight=weights)
    other = list(plain.classes_).index("other")
    assert (weighted.predict_proba(["嗯"])[:, other] > plain.predict_proba(["嗯"])[:, other]).all()


def test_refitting_replaces_what_was_learnt(small_corpus):
    texts, y = small_corpus["text"].tolist(), small_corpus["label"].tolist()
    probe = ["快递丢了", "还没发货", "掉色"]
    model = ComplaintClassifier(min_df=1).fit(texts[:16], y[:16])
    model.predict_proba(probe)
    first = [model.explain(text, label="quality_defect") for text in probe]
    model.fit(texts, y)
    fresh = ComplaintClassifier(min_df=1).fit(texts, y)
    np.testing.assert_array_equal(model.predict_proba(probe), fresh.predict_proba(probe))
    explained = [model.explain(text, label="quality_defect") for text in probe]
    assert explained == [fresh.explain(text, label="quality_defect") for text in probe] and explained != first


def test_vectorizer_drops_rare_and_common_terms():
    docs = ComplaintClassifier().analyze(["还没发货", "还没发货呢", "快递丢了", "好的"])
    vectorizer = Vectorizer(min_df=2, max_df=0.6).fit(docs)
    assert "c:还没" in vectorizer.terms_ and "c:丢" not in vectorizer.terms_


def _with(model: ComplaintClassifier, **params) -> ComplaintClassifier:
    """A copy of a fitted model with other decision parameters."""
    copy = ComplaintClassifier(**{**model.get_params(), **params})
    copy.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    return copy


def test_a_model_of_two_labels_gives_their_probabilities(small_corpus):
    from sklearn.linear_model import LogisticRegression

    two = small_corpus[small_corpus["label"].isin(["late_shipment", "other"])]
    model = ComplaintClassifier(min_df=1).fit(two["text"].tolist(), two["label"].tolist())
    probe = ["还没发货", "好的谢谢"]
    reference = LogisticRegression(C=model.C, max_iter=3000).fit(
        model.vectorizer_.transform(model.analyze(two["text"].tolist())).to_scipy(), two["label"].tolist())
    expected = reference.predict_proba(model.vectorizer_.transform(model.analyze(probe)).to_scipy())
    np.testing.assert_allclose(model.predict_proba(probe), expected, atol=1e-5)
    assert model.explain("还没发货", label="late_shipment")
