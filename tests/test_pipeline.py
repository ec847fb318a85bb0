"""The pipeline: every notebook executes under papermill at the smallest profile, the
results page aggregates them, and the book builds with warnings as errors."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from densitybench import beyond, evaluate, models, paths, runs, study


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    study.run("smoke", results_root=root, progress=False)
    return root / "smoke"


@pytest.mark.slow
def test_every_notebook_executes_and_writes_records(smoke_run):
    for name in study.NOTEBOOKS:
        assert (smoke_run / f"{name}.ipynb").is_file()
    # every run of the plan is finished in the profile's one run store, "Beyond MNIST"'s included
    # (a run whose dataset is absent from the data directory is reported, not trained)
    done = sorted(p.parent.name for p in (smoke_run / "runs").glob("*/metrics.json"))
    specs = runs.load_profile("smoke").specs()
    assert done == sorted(s.folder for s in specs if not study.missing_data(s.dataset))
    if study.missing_data("mushrooms"):
        assert not any(s.startswith("mushrooms-") for s in done)
    for run in ("digits_binary-made_masks", "digits_binary-made", "digits_binary-mob2", "digits_binary-pca_gmm2",
                "digits-pca_gmm"):
        assert f"{run}-s0" in done
    # the results table holds the likelihoods of the model chapters, one row per entry; those of "Beyond
    # MNIST" are on its own page, the GAN's Parzen estimate in a table of its own
    expected = ["made-1mask", "made-2masks", "mob_k2", "pca_gmm", "nade", "pixelcnn", "gated_pixelcnn", "pixel_lstm",
                "row_lstm", "diagonal_bilstm", "nice", "vae", "vae-2d", "made-levels", "nade-levels",
                "pixelcnn-levels", "nade-10levels-assignment", "pixel_lstm-10levels-assignment", "nade-10levels",
                "pixel_lstm-10levels"]
    table = pd.read_csv(smoke_run / "results.csv")
    assert sorted(table["entry"]) == sorted(expected)
    assert table["stopped by"].notna().all() and (table["stopped by"] != "—").all()
    # the all-families table holds the softmax models and the continuous models on the 17 levels
    bits = (smoke_run / "levels_bits_per_dim.csv").read_text()
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
    # each run's record is published with the book, where the results page's link points, and
    # the full table is offered for download
    links = re.findall(r'href="\.\./\.\./(smoke/runs/[^"]+/metrics\.json)"', results)
    assert len(links) == len(set(links)) >= 10
    for link in links:
        published = json.loads((src / "_build" / "html" / link).read_text())
        assert published == json.loads((smoke_run.parent / link).read_text())
    assert re.search(r'href="[^"]*results\.csv"', results)
    made = (src / "_build" / "html" / "book" / "executed" / "made.html").read_text()
    # glued values are rendered in the prose, and no role is left unresolved
    text = " ".join(re.sub(r"<[^>]+>", " ", made).split())
    assert "{glue:text}" not in text and "minibatches of 100 images" in text
    # no page shows a stderr stream (progress bars, warnings, logs), an unresolved glue role or an
    # unhidden code input
    for page in sorted((src / "_build" / "html" / "book" / "executed").glob("*.html")):
        html = page.read_text()
        assert "output stderr" not in html and "{glue:" not in html, page.name
        inputs = len(re.findall(r'class="cell_input', html))
        hidden = len(re.findall(r'class="cell tag_(?:hide-input|remove-input)', html))
        assert inputs <= hidden, f"{page.name}: {inputs} code inputs, {hidden} hidden"


def test_every_code_cell_of_a_page_hides_its_input():
    """The book is read for its results: code is folded away (``hide-input``, a click shows it)
    or left out (``remove-input``); the parameters cell is removed from the page."""
    for nb in sorted((paths.REPO_ROOT / "notebooks").glob("*.py")):
        cells = [line for line in nb.read_text().splitlines() if re.match(r"# %%( |$)", line)
                 and "[markdown]" not in line]
        assert cells, nb.name
        for line in cells:
            assert re.search(r'"(hide-input|remove-input|parameters)"', line), f"{nb.name}: {line!r}"


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
    staged, executed = (json.loads(p.read_text()) for p in (dst / "made.ipynb", smoke_run / "made.ipynb"))
    assert len(staged["cells"]) == len(executed["cells"])
    for a, b in zip(staged["cells"], executed["cells"]):
        tags = a["metadata"].get("tags", [])
        if set(tags) & {"parameters", "injected-parameters"}:
            assert "remove-cell" in tags  # the page does not show the parameters
        assert a["source"] == b["source"]
        kept = [o for o in b.get("outputs", []) if not (o["output_type"] == "stream" and o["name"] == "stderr")]
        assert a.get("outputs", []) == kept  # every output but stderr (bars, warnings, logs)
    assert any(set(c["metadata"].get("tags", [])) & {"injected-parameters"} for c in staged["cells"])
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
    # the folder, given relative to the data directory, became one binary dataset whose runs,
    # made on the fly with the chapter's settings, live in the profile's run store
    store = root / "smoke" / "runs"
    done = sorted(p.parent.name for p in store.glob("*/metrics.json"))
    assert "image_folder-faces-made_masks-s0" in done and "image_folder-faces-mob2-s0" in done
    spec = runs.Run(store / "image_folder-faces-mob2-s0").spec
    assert spec.dataset == "image_folder:faces?size=8x8&binarize=128" and spec.chapter == "beyond"
    assert spec.train["epochs"] == study.config("beyond", "smoke")["epochs"]
    assert sorted(p.name for p in data_dir.iterdir()) == ["faces"]
    # the name each run recorded loads the same images again: every run re-evaluates from its checkpoint
    from densitybench import cli

    folders = [str(store / name) for name in done if name.startswith("image_folder-")]
    assert cli.main(["evaluate", *folders, "--tolerance", "1e-4"]) == 0
    for f in folders:
        res = evaluate.reevaluate(f)
        assert abs(res["difference"]) <= 1e-4, res


def test_beyond_runs_are_named_by_kind_and_chosen_on_validation():
    assert beyond.parse_name("adult-mob50") == ("adult", "mob", 50)
    assert beyond.parse_name("fashion_mnist-pca_gmm") == ("fashion_mnist", "pca_gmm", None)
    assert beyond.parse_name("image_folder-faces-made_masks") == ("image_folder-faces", "made_masks", None)
    with pytest.raises(ValueError, match="<dataset>-<kind><K>"):
        beyond.parse_name("adult-vae")

    class Finished:  # what select_on_validation reads of a run
        def __init__(self, name, valid):
            self.folder, self.record = paths.REPO_ROOT / name, {"valid_nll_nats": valid}

    grid = [Finished("a-mob10-s0", 20.8), Finished("a-mob50-s0", 19.0), Finished("a-mob200-s0", 19.1)]
    assert beyond.select_on_validation(grid) is grid[1]
    with pytest.raises(ValueError, match="a-mob5-s0"):
        beyond.select_on_validation([*grid, Finished("a-mob5-s0", None)])
    # every run of the group profiles' plans is named so, and every grid holds several K
    for group in ("uci", "atari", "caltech", "fashion"):
        for spec in runs.load_profile(group).specs(chapter="beyond"):
            stem, kind, k = beyond.parse_name(spec.name)
            assert stem == spec.dataset and spec.model == beyond.MODEL_OF[kind]
    assert [study.beyond_profile(n) for n in ("adult", "atari_breakout", "caltech101_silhouettes", "fashion_mnist",
                                              "mnist")] == ["uci", "atari", "caltech", "fashion", None]


def test_a_gathering_page_lists_absent_runs_with_the_command_that_makes_them(tmp_path):
    cfg = {**study.config("beyond", "smoke"), "collect": ["smoke"], "train_missing": False}
    gathering = beyond.Gathering("smoke", cfg, tmp_path, device="cpu")
    assert gathering.group(["digits_binary", "mnist"], beyond.GROUP_KINDS["images"]) == {}
    assert "densitybench train --profile smoke --runs 'digits_binary-*'" in gathering.not_run["digits_binary"]
    assert "is not finished" in gathering.not_run["digits_binary"]
    assert gathering.not_run["mnist"] == "no run on it in the plan of the profile smoke"
    assert not (tmp_path / "smoke").exists()  # nothing was trained
    # a folder holding a run with other settings is reported, never read as this page's run
    spec = runs.load_profile("smoke").spec("digits_binary-made_masks")  # the first kind read
    other = runs.make_spec(spec.name, spec.model, spec.dataset, hparams={**spec.hparams, "hidden_sizes": [17]},
                           train=spec.train)
    folder = runs.store_root("smoke", tmp_path) / spec.folder
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps(other.to_json()))
    assert gathering.dataset("digits_binary", beyond.GROUP_KINDS["images"]) is None
    assert "hparams.hidden_sizes: [17] != [16]" in gathering.not_run["digits_binary"]


def test_a_page_that_trains_its_plan_finds_its_finished_runs_without_training_them_again(tmp_path):
    cfg = study.config("beyond", "smoke")
    gathering = beyond.Gathering("smoke", cfg, tmp_path, device="cpu")
    found = gathering.dataset("digits_binary", beyond.GROUP_KINDS["images"])  # trained: 2 epochs, EM in 3 or 5 steps
    assert found is not None and set(found.chosen) == {"made_masks", "made", "mob", "pca_gmm"}
    assert [k for k, _ in found.grid["mob"]] == [2] and found.chosen["mob"] is found.grid["mob"][0][1]
    assert found.store == runs.store_root("smoke", tmp_path) and found.profile == "smoke"
    stamps = {p: p.stat().st_mtime_ns for p in found.store.glob("*/metrics.json")}
    again = beyond.Gathering("smoke", {**cfg, "collect": ["smoke"], "train_missing": False}, tmp_path)
    read = again.dataset("digits_binary", beyond.GROUP_KINDS["images"])
    assert read.record("made")["test_nll_nats"] == found.record("made")["test_nll_nats"]
    assert {p: p.stat().st_mtime_ns for p in found.store.glob("*/metrics.json")} == stamps
    assert set(again.every_run()) == {s.folder for s in runs.load_profile("smoke").specs(chapter="beyond")
                                      if s.dataset == "digits_binary"}


@pytest.mark.slow
def test_beyond_gathers_the_runs_of_other_profiles_without_training(smoke_run, tmp_path):
    root = tmp_path / "results"
    shutil.copytree(smoke_run / "runs", root / "smoke" / "runs")
    params = {"collect": ["smoke"], "train_missing": False, "uci": []}
    stamps = {p.name: p.stat().st_mtime_ns for p in (root / "smoke" / "runs").iterdir()}
    text = study.execute("beyond", "smoke", root, params, progress=False).read_text()
    assert {p.name: p.stat().st_mtime_ns for p in (root / "smoke" / "runs").iterdir()} == stamps  # nothing trained
    assert "trains nothing: it gathers the finished runs that the profiles smoke planned and wrote" in text
    for spec in runs.load_profile("smoke").specs(chapter="beyond"):  # every run is named on the page
        if spec.dataset != "mushrooms":
            assert spec.folder in text
    with_missing = tmp_path / "partial"
    shutil.copytree(smoke_run / "runs", with_missing / "smoke" / "runs",
                    ignore=shutil.ignore_patterns("digits_binary-mob*"))
    text = study.execute("beyond", "smoke", with_missing, params, progress=False).read_text()
    # the dataset is listed as not run, with the command that makes its runs, and nothing is trained
    assert "densitybench train --profile smoke --runs 'digits_binary-*'" in text and "is not finished" in text
    assert not list((with_missing / "smoke" / "runs").glob("digits_binary-mob*"))


def _run_numbers(folder) -> dict:
    """The numbers training determines in a run's record (timings and provenance left out)."""
    rec = json.loads((folder / "metrics.json").read_text())
    keep = ("test_nll_nats", "test_nll_se", "valid_nll_nats", "bits_per_dim", "epochs", "best_epoch", "stop_reason")
    return {**{k: rec.get(k) for k in keep},
            "history": [(e["epoch"], e["train_loss"], e["valid_loss"]) for e in rec["history"]]}


@pytest.mark.slow
def test_ray_trains_the_smoke_plan_bitwise_like_the_local_executor(smoke_run, tmp_path):
    """The smoke plan trained by Ray tasks on a local cluster of this machine's CPUs equals, number
    for number and weight for weight, what the local executor trained for the pipeline; a second
    call trains nothing."""
    import torch

    out = study.train("smoke", tmp_path, executor="ray", cpus_per_run=1, threads=1, progress=False)
    local = sorted(p.parent.name for p in (smoke_run / "runs").glob("*/metrics.json"))
    assert sorted(r["folder"].rsplit("/", 1)[-1] for r in out) == local
    for name in local:
        a, b = smoke_run / "runs" / name, tmp_path / "smoke" / "runs" / name
        assert _run_numbers(a) == _run_numbers(b), name
        wa, wb = (torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (a, b))
        if models.MODELS[json.loads((a / "spec.json").read_text())["model"]].trained_by_gradient:
            assert all(torch.equal(wa[k], wb[k]) for k in wa), name
        else:  # fitted by scikit-learn, whose BLAS may split its sums across another number of threads
            assert all(torch.allclose(wa[k], wb[k], rtol=1e-5, atol=1e-8) for k in wa), name
    assert study.train("smoke", tmp_path, executor="ray", progress=False) == []
