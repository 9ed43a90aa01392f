import json
import shutil

import numpy as np
import pytest

from classifier import artifact


def test_round_trip(small_model, small_model_path):
    loaded = artifact.load(small_model_path, trust=True)
    probe = ["还没发货", "好的", "掉色了"]
    np.testing.assert_array_equal(loaded.predict_proba(probe), small_model.predict_proba(probe))
    meta = artifact.read_metadata(small_model_path)
    assert meta["model_sha256"] == artifact.sha256(small_model_path)
    assert meta["note"] == "test fixture"


def test_outside_models_folder_needs_trust(small_model_path):
    with pytest.raises(artifact.ModelError, match="--trust"):
        artifact.load(small_model_path)


def test_one_flipped_byte_is_refused(small_model_path, tmp_path):
    copy = tmp_path / "m.npz"
    shutil.copy(small_model_path, copy)
    shutil.copy(artifact.metadata_path(small_model_path), artifact.metadata_path(copy))
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(artifact.ModelError, match="SHA-256"):
        artifact.load(copy, trust=True)


def test_other_label_set_is_refused(small_model_path, tmp_path):
    copy = tmp_path / "m.npz"
    shutil.copy(small_model_path, copy)
    meta = artifact.read_metadata(small_model_path)
    meta["label_set"] = meta["label_set"][:-1]
    artifact.metadata_path(copy).write_text(json.dumps(meta))
    with pytest.raises(artifact.ModelError, match="another label set"):
        artifact.load(copy, trust=True)


def test_missing_files(tmp_path, small_model_path):
    with pytest.raises(artifact.ModelError, match="not found"):
        artifact.load(tmp_path / "none.npz", trust=True)
    lonely = tmp_path / "lonely.npz"
    shutil.copy(small_model_path, lonely)
    with pytest.raises(artifact.ModelError, match="metadata not found"):
        artifact.load(lonely, trust=True)


def test_shipped_model_loads_and_is_small():
    path = artifact.default_model_path()
    model = artifact.load()
    assert path.stat().st_size <= 20 * 1024 * 1024
    assert len(model.classes_) == 17
    meta = artifact.read_metadata(path)
    cv = meta["cross_validation"]
    assert cv["real"]["macro_f1"] > 0 and cv["written"]["macro_f1"] > 0  # real-data CV beside written-data CV
    assert meta["counts_per_source"]["real"] > 10_000 and meta["dev_evaluation"]["labels_scored"] >= 10
    assert model.temperature_ == cv["temperature"] and model.dispute_threshold == cv["dispute_threshold"]
    assert sum(meta["counts_per_label"].values()) == meta["training_rows"]
    assert meta["segmentation_engine"] == "rjieba" and meta["userdict_sha256"]


def test_another_user_dictionary_or_engine_warns(small_model_path, tmp_path):
    copy = tmp_path / "m.npz"
    shutil.copy(small_model_path, copy)
    meta = artifact.read_metadata(small_model_path)
    meta.update(userdict_sha256="0" * 64, segmentation_engine="jieba")
    artifact.metadata_path(copy).write_text(json.dumps(meta))
    with pytest.warns(artifact.VersionWarning) as caught:
        artifact.load(copy, trust=True)
    messages = " ".join(str(w.message) for w in caught)
    assert "another user dictionary" in messages and "jieba segmentation engine" in messages


def test_library_version_change_warns(small_model_path, tmp_path):
    copy = tmp_path / "m.npz"
    shutil.copy(small_model_path, copy)
    meta = artifact.read_metadata(small_model_path)
    meta["library_versions"]["jieba"] = "0.0.1"
    artifact.metadata_path(copy).write_text(json.dumps(meta))
    with pytest.warns(artifact.VersionWarning, match="jieba 0.0.1"):
        artifact.load(copy, trust=True)


def test_same_library_versions_do_not_warn(small_model_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", artifact.VersionWarning)
        artifact.load(small_model_path, trust=True)
