"""Save and load a trained model: ``NAME.npz`` (arrays only) and ``NAME.json`` (metadata).

The ``.npz`` holds plain arrays and is read with ``allow_pickle=False``, so loading a model
never runs code from the file. Its SHA-256 is recorded in the metadata and checked on
every load; a model from outside the project's ``models/`` folder is refused unless the
caller trusts it explicitly.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import warnings
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path

import numpy as np

from . import knowledge
from .features import Vectorizer
from .model import ComplaintClassifier
from .segment import userdict_sha256
from .tabular import file_mode

FORMAT_VERSION = 2
DEFAULT_MODEL_NAME = "default.npz"


class ModelError(Exception):
    """A model file is missing, damaged, untrusted or does not fit this version."""


class VersionWarning(UserWarning):
    """The model was trained with other versions of the libraries that shape its features."""


# Libraries whose version changes what a message turns into (jieba's dictionary, OpenCC's
# tables) or what training produces (scikit-learn); prediction itself needs only NumPy.
CHECKED_LIBRARIES = ("jieba", "rjieba", "opencc", "scikit-learn")


def default_model_path() -> Path:
    """The shipped model: ``models/default.npz``, installed as package ``classifier.models``."""
    return Path(str(resources.files("classifier.models").joinpath(DEFAULT_MODEL_NAME)))


def models_dir() -> Path:
    """The project's models folder: models in it load without ``trust=True``."""
    return default_model_path().parent.resolve()


def metadata_path(model_path: str | os.PathLike) -> Path:
    """The metadata JSON that sits beside a model file."""
    return Path(model_path).with_suffix(".json")


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike, write, mode: str = "wb") -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {path.parent}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            write(fh)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: ComplaintClassifier, path: str | os.PathLike, metadata: dict | None = None) -> dict:
    """Write ``model`` to ``path`` (``.npz``) and its metadata beside it; return the metadata."""
    model._check_fitted()
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"model files end in .npz, got {path.name!r}")
    config = {"params": model.get_params(), "format_version": FORMAT_VERSION, "temperature": model.temperature_}
    arrays = {
        "terms": np.frombuffer("\n".join(model.vectorizer_.terms_).encode("utf-8"), dtype=np.uint8),
        "idf": model.vectorizer_.idf_,
        "coef": model.coef_,
        "intercept": model.intercept_,
        "classes": np.asarray(model.classes_, dtype=str),
        "config": np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8),
    }
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    meta = dict(metadata or {})
    meta.update(
        format_version=FORMAT_VERSION,
        label_set=list(knowledge.labels()),
        classes=[str(c) for c in model.classes_],
        params=config["params"],
        temperature=model.temperature_,
        n_features=len(model.vectorizer_.terms_),
        segmentation_engine=model.analyzer.segmenter.engine,
        userdict_sha256=userdict_sha256(),
        model_file=path.name,
        model_sha256=sha256(path),
        model_bytes=path.stat().st_size,
        library_versions=library_versions(),
    )
    atomic_write(
        metadata_path(path),
        lambda fh: fh.write(json.dumps(meta, ensure_ascii=False, indent=1) + "\n"),
        mode="w",
    )
    return meta


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of the model at ``path``; ``ModelError`` when it is missing or unreadable."""
    meta = metadata_path(path)
    try:
        return json.loads(meta.read_text("utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model metadata not found: {meta} (it must sit beside the model file)") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read model metadata {meta}: {exc}") from None


def library_versions() -> dict:
    """Versions of Python and the libraries that shape a model."""
    out = {"python": platform.python_version()}
    for name in ("numpy", "pandas", *CHECKED_LIBRARIES):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def _warn_on_version_change(meta: dict, model: ComplaintClassifier) -> None:
    if meta.get("userdict_sha256") not in (None, userdict_sha256()):
        warnings.warn("model was trained with another user dictionary (resources/userdict.txt): messages may be "
                      "segmented differently than in training; retrain with `complaint-classifier train`",
                      VersionWarning, stacklevel=3)
    trained_engine, engine = meta.get("segmentation_engine"), model.analyzer.segmenter.engine
    if trained_engine and trained_engine != engine:
        warnings.warn(f"model was trained with the {trained_engine} segmentation engine, this environment uses "
                      f"{engine}: the cuts are the same except for ties between equally probable cuts",
                      VersionWarning, stacklevel=3)
    trained = meta.get("library_versions", {})
    for name in CHECKED_LIBRARIES:
        try:
            installed = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            installed = None
        if trained.get(name) and installed != trained[name]:
            effect = ("retraining may give a different model" if name == "scikit-learn"
                      else "messages may be segmented or converted differently than in training")
            warnings.warn(f"model was trained with {name} {trained[name]}, this environment has {installed}: "
                          f"{effect}; retrain with `complaint-classifier train` to be sure", VersionWarning,
                          stacklevel=3)


def load(path: str | os.PathLike | None = None, *, trust: bool = False) -> ComplaintClassifier:
    """Load a model, checking its hash, its origin and its label set.

    ``path`` defaults to the shipped model. Models outside the project's ``models/``
    folders load only with ``trust=True``.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if not trust and path.resolve().parent != models_dir():
        raise ModelError(
            f"refusing to load a model from outside the project's models folder: {path}. "
            "Pass --trust (trust=True) if you know where this file comes from."
        )
    meta = read_metadata(path)
    actual = sha256(path)
    if actual != meta.get("model_sha256"):
        raise ModelError(
            f"model file {path} does not match the SHA-256 in its metadata "
            f"(expected {meta.get('model_sha256')}, got {actual}): the file was changed or damaged"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"model format {meta.get('format_version')} is not supported (expected {FORMAT_VERSION})")
    if meta.get("label_set") != list(knowledge.labels()):
        raise ModelError(
            "model was trained for another label set: "
            f"{meta.get('label_set')} (this version uses {list(knowledge.labels())})"
        )
    with np.load(path, allow_pickle=False) as data:
        config = json.loads(data["config"].tobytes().decode("utf-8"))
        params = config["params"]
        params["char_ngrams"] = tuple(params["char_ngrams"])
        model = ComplaintClassifier(**params)
        vectorizer = Vectorizer(model.char_ngrams, model.min_df, model.max_df, model.max_count)
        vectorizer.terms_ = data["terms"].tobytes().decode("utf-8").split("\n")
        vectorizer.idf_ = data["idf"]
        model.vectorizer_ = vectorizer
        model.coef_ = data["coef"]
        model.intercept_ = data["intercept"]
        model.classes_ = data["classes"]
        model.temperature_ = float(config["temperature"])
    _warn_on_version_change(meta, model)
    return model
