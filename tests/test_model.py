import numpy as np
import pytest

from classifier import ComplaintClassifier, knowledge


def test_predict_proba_shape_and_sum(small_model):
    proba = small_model.predict_proba(["还没发货", "在吗", ""])
    assert proba.shape == (3, len(small_model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(small_model.predict(["还没发货"])) <= set(small_model.classes_)


def test_inference_matches_scikit_learn(small_corpus):
    """Our NumPy-only TF-IDF and scoring equal scikit-learn's transform and predict_proba."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    model = ComplaintClassifier(min_df=1, other_prior=None)
    texts, y = small_corpus["text"].tolist(), small_corpus["label"].tolist()
    docs = [model.analyze(t) for t in texts]
    model.fit_terms(docs, y)
    vectorizer = TfidfVectorizer(analyzer=lambda d: d, min_df=1, max_df=int(model.max_df * len(docs)), sublinear_tf=True)
    X = vectorizer.fit_transform(docs)
    reference = LogisticRegression(C=model.C, max_iter=3000).fit(X, y)
    probe = ["快递一直不更新，还没发货？？", "掉色了，质量太差", "谢谢"]
    expected = reference.predict_proba(vectorizer.transform([model.analyze(t) for t in probe]))
    np.testing.assert_allclose(model.predict_proba(probe), expected, atol=1e-4)


def test_training_is_deterministic(small_corpus):
    texts, y = small_corpus["text"].tolist(), small_corpus["label"].tolist()
    probe = ["发货太慢了", "物流不动", "好的", "坏了"]
    a = ComplaintClassifier(min_df=1).fit(texts, y)
    b = ComplaintClassifier(min_df=1).fit(texts, y)
    np.testing.assert_array_equal(a.predict_proba(probe), b.predict_proba(probe))
    assert a.terms_ == b.terms_


def test_classify_output(small_model):
    prediction = small_model.classify(["拍了五天了还不发货"], k=3)[0]
    assert prediction.label in small_model.classes_
    assert prediction.name == knowledge.info(prediction.label).name
    assert [lab for lab, _ in prediction.top][0] == prediction.label
    assert len(prediction.top) == 3 and prediction.top[0][1] >= prediction.top[1][1] >= prediction.top[2][1]
    assert prediction.probability == pytest.approx(prediction.top[0][1])
    assert prediction.rule == knowledge.info(prediction.label).rule and prediction.advice
    assert len(prediction.top_terms) <= 5
    record = prediction.to_dict()
    assert {"label", "name", "probability", "top", "needs_review", "top_terms", "rule", "advice"} <= set(record)


def test_message_without_known_terms_needs_review(small_model):
    for text in ["", "   ", "😀😀", "!!!"]:
        assert small_model.classify([text])[0].needs_review


def test_review_threshold_controls_needs_review(small_model):
    text = ["还没发货"]
    p = small_model.classify(text)[0].probability
    strict = ComplaintClassifier(**{**small_model.get_params(), "review_threshold": min(1.0, p + 0.01)})
    strict.__dict__.update({k: v for k, v in small_model.__dict__.items() if k.endswith("_")})
    assert strict.classify(text)[0].needs_review


def test_explain_returns_terms_of_the_text(small_model):
    terms = small_model.explain("衣服洗了就掉色", label="quality_defect")
    assert terms and all(weight > 0 for _, weight in terms)
    assert any(term in "衣服洗了就掉色" for term, _ in terms)


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


def test_params_round_trip():
    model = ComplaintClassifier(C=3.0, min_df=1)
    assert model.get_params()["C"] == 3.0
    assert ComplaintClassifier(**model.get_params()).get_params() == model.get_params()


def test_other_prior_shifts_only_the_other_intercept(small_corpus):
    texts, y = small_corpus["text"].tolist(), small_corpus["label"].tolist()
    plain = ComplaintClassifier(min_df=1, other_prior=None).fit(texts, y)
    shifted = ComplaintClassifier(min_df=1, other_prior=0.8).fit(texts, y)
    delta = shifted.intercept_ - plain.intercept_
    other = list(plain.classes_).index("other")
    trained = y.count("other") / len(y)
    assert delta[other] == pytest.approx(np.log(0.8 / 0.2 * (1 - trained) / trained), rel=1e-5)
    assert np.allclose(np.delete(delta, other), 0)
    assert (shifted.predict_proba(["嗯"])[:, other] > plain.predict_proba(["嗯"])[:, other]).all()
    with pytest.raises(ValueError, match="other_prior"):
        ComplaintClassifier(min_df=1, other_prior=1.5).fit(texts, y)


def test_refitting_replaces_what_was_learnt(small_corpus):
    texts, y = small_corpus["text"].tolist(), small_corpus["label"].tolist()
    probe = ["快递丢了", "还没发货", "掉色"]
    model = ComplaintClassifier(min_df=1).fit(texts[:16], y[:16])
    model.predict_proba(probe)
    model.fit(texts, y)
    fresh = ComplaintClassifier(min_df=1).fit(texts, y)
    np.testing.assert_array_equal(model.predict_proba(probe), fresh.predict_proba(probe))
