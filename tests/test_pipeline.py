"""The pipeline: every notebook executes under papermill at the smallest profile, the
results page aggregates them, and the book builds with warnings as errors."""

import json
import re
import shutil

import numpy as np
import pytest

from densitybench import paths, study


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    study.run("smoke", results_root=root, progress=False)
    return root / "smoke"


@pytest.mark.slow
def test_every_notebook_executes_and_writes_records(smoke_run):
    for name in study.NOTEBOOKS:
        assert (smoke_run / f"{name}.ipynb").is_file()
    runs = sorted(p.parent.name for p in smoke_run.glob("*/metrics.json"))
    expected = ["made-1mask", "made-2masks", "mob_k2", "pca_gmm", "nade", "pixelcnn", "pixel_lstm", "row_lstm",
                "nice", "vae", "vae-2d", "gan", "made-levels", "nade-levels", "pixelcnn-levels"]
    assert runs == sorted(expected)
    assert (smoke_run / "results.csv").read_text().count("\n") == len(expected) + 1
    # "Beyond MNIST" writes its runs in a folder of its own, out of the MNIST tables
    beyond = sorted(p.parent.name for p in (smoke_run / "beyond").glob("*/metrics.json"))
    for run in ("digits_binary-made_masks", "digits_binary-made", "digits_binary-mob2", "digits_binary-pca_gmm2",
                "digits-pca_gmm"):
        assert run in beyond
    # the all-families table holds the softmax models and the continuous models on the 17 levels
    bits = (smoke_run / "bits_per_dim_digits.csv").read_text()
    for label in ("MADE, 17-way softmax", "NADE, 17-way softmax", "PixelCNN, 17-way softmax", "NICE", "PCA"):
        assert label in bits
    nb = json.loads((smoke_run / "made.ipynb").read_text())
    # papermill recorded the injected parameters, with no machine-specific path for the repo
    injected = [c for c in nb["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert injected and 'profile = "smoke"' in "".join(injected[0]["source"])
    for name in study.NOTEBOOKS:
        assert str(paths.REPO_ROOT) not in (smoke_run / f"{name}.ipynb").read_text()


def test_scrub_paths_replaces_the_repository_location(tmp_path):
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"outputs": [f"{paths.REPO_ROOT}/.venv/lib/warn.py:1: Warning"],
                              "metadata": {"papermill": {"input_path": "/tmp/tmpab12/x.ipynb"}}}, indent=1))
    study.scrub_paths(nb)
    text = nb.read_text()
    assert str(paths.REPO_ROOT) not in text and "<repo>/.venv/lib/warn.py" in text
    assert json.loads(text)["metadata"]["papermill"]["input_path"] == "notebooks/x.py"


@pytest.mark.slow
def test_book_builds_with_warnings_as_errors(smoke_run, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy(paths.REPO_ROOT / f, src / f)
    shutil.copytree(paths.REPO_ROOT / "book", src / "book", ignore=shutil.ignore_patterns("executed"))
    index = study.build_book("smoke", results_root=smoke_run.parent, source_root=src)
    assert index.is_file()
    results = (src / "_build" / "html" / "book" / "executed" / "results.html").read_text()
    assert "test NLL (nats)" in results and "made-1mask" in results
    made = (src / "_build" / "html" / "book" / "executed" / "made.html").read_text()
    # glued values are rendered in the prose, and no role is left unresolved
    text = " ".join(re.sub(r"<[^>]+>", " ", made).split())
    assert "{glue:text}" not in text and "minibatches of 100 images" in text


def test_profiles_name_their_notebooks():
    for profile in ("smoke", "mnist"):  # the test suite and the published profile run every chapter
        assert set(study.PROFILES[profile]) == set(study.NOTEBOOKS), profile
    # the embedded default does not grow with the further datasets, which have profiles of their own
    assert set(study.NOTEBOOKS) - set(study.PROFILES["digits"]) == {"beyond"}
    for profile in ("uci", "atari", "caltech", "fashion"):
        assert study.notebooks_of(profile) == ["beyond"]
    with pytest.raises(ValueError, match="unknown profile"):
        study.config("made", "nope")
    assert study.config("made", "digits", epochs=3, dataset=None)["epochs"] == 3


def test_a_chapter_not_executed_under_a_profile_gets_a_page_that_says_so(smoke_run, tmp_path):
    partial = tmp_path / "results" / "smoke"
    partial.mkdir(parents=True)
    for name in study.NOTEBOOKS:
        if name != "samples":
            shutil.copy2(smoke_run / f"{name}.ipynb", partial / f"{name}.ipynb")
    dst = study.stage_book("smoke", results_root=tmp_path / "results", source_root=tmp_path / "src")
    page = json.loads((dst / "samples.ipynb").read_text())
    text = "".join(page["cells"][0]["source"])
    assert text.startswith("# Judging samples") and "Not executed for the `smoke` profile" in text
    assert (dst / "made.ipynb").read_bytes() == (smoke_run / "made.ipynb").read_bytes()
    with pytest.raises(FileNotFoundError, match="no executed notebook"):
        study.stage_book("smoke", results_root=tmp_path / "empty", source_root=tmp_path / "src")


def test_study_params_are_python_literals_or_strings():
    from densitybench.cli import parse_params

    assert parse_params(["epochs=7", "dataset=mnist", "hidden_sizes=[8, 8]", "device=cpu"]) == {
        "epochs": 7, "dataset": "mnist", "hidden_sizes": [8, 8], "device": "cpu"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_params(["epochs"])


@pytest.mark.slow
def test_beyond_runs_a_folder_of_the_readers_images(tmp_path, monkeypatch):
    from PIL import Image

    data_dir = tmp_path / "data"
    (data_dir / "faces").mkdir(parents=True)
    for i in range(30):  # a bright square at a different height in each image
        a = np.zeros((40, 36), np.uint8)
        a[5 + i % 15 : 20 + i % 15, 8:28] = 255
        Image.fromarray(a).save(data_dir / "faces" / f"{i:02d}.png")
    monkeypatch.setenv(paths.DATA_ENV, str(data_dir))
    root = tmp_path / "results"
    study.execute("beyond", "smoke", root, {"uci": [], "levels": [], "images": [], "image_folder": "faces",
                                            "image_size": 8}, progress=False)
    # the folder, given relative to the data directory, became one binary dataset whose runs
    # live in the chapter's own results folder
    runs = sorted(p.parent.name for p in (root / "smoke" / "beyond").glob("*/metrics.json"))
    assert "image_folder-faces-made_masks" in runs and "image_folder-faces-mob2" in runs
    assert sorted(p.name for p in data_dir.iterdir()) == ["faces"]


def test_find_run_returns_a_finished_run_only_when_it_was_trained_with_the_same_settings(smoke_run, tmp_path):
    folder = smoke_run / "beyond"
    rec = json.loads((folder / "digits_binary-made" / "metrics.json").read_text())
    cfg = study.config("beyond", "smoke")
    hp = rec["config"]["hyperparameters"]
    found, where = study.find_run("digits_binary-made", "made", hp, "digits_binary", cfg, [tmp_path, folder])
    assert where == folder / "digits_binary-made" and found["test_nll_nats"] == rec["test_nll_nats"]
    with pytest.raises(study.RunNotFound, match=r"lr: 0.001 there, 0.01 here"):
        study.find_run("digits_binary-made", "made", hp, "digits_binary", {**cfg, "lr": 0.01}, [folder])
    with pytest.raises(study.RunNotFound, match="hyperparameters"):
        study.find_run("digits_binary-made", "made", {**hp, "hidden_sizes": [17]}, "digits_binary", cfg, [folder])
    with pytest.raises(study.RunNotFound, match="seed"):
        study.find_run("digits_binary-made", "made", hp, "digits_binary", cfg, [folder], seed=1)
    with pytest.raises(study.RunNotFound, match="dataset: 'digits_binary' there, 'mnist' here"):
        study.find_run("digits_binary-made", "made", hp, "mnist", cfg, [folder])
    with pytest.raises(study.RunNotFound, match="no finished run"):
        study.find_run("digits_binary-nope", "made", hp, "digits_binary", cfg, [folder])
    assert [study.beyond_profile(n) for n in ("adult", "atari_breakout", "caltech101_silhouettes", "fashion_mnist",
                                              "mnist")] == ["uci", "atari", "caltech", "fashion", None]


@pytest.mark.slow
def test_beyond_gathers_the_runs_of_other_profiles_without_training(smoke_run, tmp_path):
    root = tmp_path / "results"
    shutil.copytree(smoke_run / "beyond", root / "group" / "beyond")
    nb = study.execute("beyond", "smoke", root, {"collect": ["group"]}, progress=False)
    assert not (root / "smoke" / "beyond").exists()  # nothing was trained
    text = nb.read_text()
    gathered = sorted(p.parent.name for p in (root / "group" / "beyond").glob("*/metrics.json"))
    assert "digits_binary-made_masks" in gathered
    assert "reuses the finished runs that the profiles group wrote" in text  # the glued sentence
    for run in gathered:  # every run is named on the page, with the folder it came from
        assert run in text
    assert str(root / "group" / "beyond") in text
    with_missing = tmp_path / "partial"
    shutil.copytree(smoke_run / "beyond", with_missing / "group" / "beyond",
                    ignore=shutil.ignore_patterns("digits_binary-mob*"))
    text = study.execute("beyond", "smoke", with_missing, {"collect": ["group"], "train_missing": False},
                         progress=False).read_text()
    assert "digits_binary-mob2" in text and "no finished run" in text  # the dataset is listed as not run
    assert "trains nothing: it gathers the finished runs that the profiles group wrote" in text
    assert not (with_missing / "smoke" / "beyond").exists()
