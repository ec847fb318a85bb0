"""The chapter skeleton: opening a chapter, random subsets of a split, completions, tables."""

import pytest
import torch

from densitybench import chapter, models, report, runs
from densitybench.models.autoregressive import dependency_map


def test_a_subset_is_seeded_drawn_without_replacement_and_not_the_first_images():
    split = torch.arange(1000).repeat_interleave(10)  # sorted by "digit", like the binarized MNIST test file
    a, b = chapter.subset(split, 64, seed=0), chapter.subset(split, 64, seed=0)
    assert torch.equal(a, b)  # the same seed draws the same images
    assert not torch.equal(a, chapter.subset(split, 64, seed=1))
    assert not torch.equal(a, split[:64]) and len(set(a.tolist())) > 1  # not the first, sorted ones
    idx = chapter.subset(torch.arange(len(split)), 64, seed=0)
    assert len(idx) == 64 and len(set(idx.tolist())) == 64  # without replacement
    everything = chapter.subset(torch.arange(10), 50, seed=3)
    assert sorted(everything.tolist()) == list(range(10))  # asking for more returns the whole split, shuffled
    with pytest.raises(ValueError, match="at least 0"):
        chapter.subset(split, -1, seed=0)


def test_a_chapter_opens_with_its_runs_of_the_seed_and_the_dataset_they_are_trained_on(tmp_path):
    ch = chapter.Chapter.open("made", "smoke", seed=0, results_dir=tmp_path / "smoke", device="cpu")
    assert ch.specs and all(s.chapter == "made" and s.seed == 0 for s in ch.specs)
    assert ch.folders == [s.folder for s in ch.specs] and ch.store == tmp_path / "smoke" / "runs"
    assert all(s.dataset == ch.data.name for s in ch.specs) and ch.device == torch.device("cpu")
    sizes = ch.data.sizes()
    assert str(sizes) in ch.describe() and ch.describe().startswith(ch.data.description)
    shown = ch.images("train", 5)
    assert shown.shape == (5, *ch.data.image_shape) and torch.equal(shown, ch.images("train", 5))
    # a page whose dataset is named by another setting, and one whose runs are on two datasets
    assert chapter.Chapter.open("nice", "smoke", results_dir=tmp_path).data.kind == "levels"
    assert "with 17 levels" in chapter.Chapter.open("nice", "smoke", results_dir=tmp_path).describe()
    with pytest.raises(ValueError, match="mob_k2-s0 is trained on digits_binary, not on the page's dataset digits"):
        chapter.Chapter.open("pca_gmm", "smoke", results_dir=tmp_path, on_dataset=["pca_gmm", "mob_k2"])
    with pytest.raises(ValueError, match="profile 'smoke' has no NADE run with seed 7"):
        chapter.Chapter.open("nade", "smoke", seed=7, results_dir=tmp_path)


def test_the_results_table_and_the_glued_headline_hold_the_runs_numbers(tmp_path, monkeypatch):
    ch = chapter.Chapter.open("pca_gmm", "smoke", results_dir=tmp_path / "smoke", device="cpu")
    finished = ch.ensure_runs([ch.spec("mob_k2")])  # EM on the 8x8 digits: about a second
    records = chapter.records(finished)
    r = records["mob_k2"]
    assert r == runs.Run(runs.run_dir(ch.spec("mob_k2"), ch.store)).record
    table = report.run_table(records)
    assert table.loc["mob_k2", "test NLL (nats)"] == f"{r['test_nll_nats']:.2f} ± {r['test_nll_se']:.2f}"
    glued = {}
    monkeypatch.setattr(chapter, "glue_values", lambda prefix, values: glued.update(
        {f"{prefix}_{k}": v for k, v in values.items()}))
    assert ch.glue_headline(records) == "mob_k2"
    assert glued == {"pca_gmm_run": "mob_k2", "pca_gmm_dataset": r["dataset"],
                     "pca_gmm_nll": f"{r['test_nll_nats']:.2f}", "pca_gmm_se": f"{r['test_nll_se']:.2f}"}
    nn = chapter.glue_nearest_neighbour("mob", r, ".1f")
    assert glued["mob_nn_sample_median"] == f"{nn['samples']['q50']:.1f}"
    assert glued["mob_nn_test_median"] == f"{nn['test']['q50']:.1f}"


def test_a_completion_keeps_the_known_pixels_and_is_reproducible():
    model = chapter.perturb(models.create("nade", (1, 6, 5), hidden_size=8, init_seed=0), seed=0, scale=1.0)
    images = torch.randint(0, 2, (4, 1, 6, 5), generator=torch.Generator().manual_seed(1)).float()
    draws = chapter.complete_bottom_half(model, images, seed=0, n_draws=3)
    assert len(draws) == 3 and chapter.observed_rows(images) == 3
    for x in draws:
        assert x.shape == images.shape and torch.equal(x[:, :, :3], images[:, :, :3])  # the top half kept
        assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert any(not torch.equal(a[:, :, 3:], images[:, :, 3:]) for a in draws)  # the bottom half is drawn
    again = chapter.complete_bottom_half(model, images, seed=0, n_draws=3)
    assert all(torch.equal(a, b) for a, b in zip(draws, again))


class _Dense(torch.nn.Module):
    """Every logit sees every pixel: not autoregressive."""

    def __init__(self, n_dims):
        super().__init__()
        self.n_dims, self.device = n_dims, torch.device("cpu")
        self.w = torch.nn.Parameter(torch.randn(n_dims, n_dims, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return x.reshape(len(x), -1) @ self.w


def test_the_future_leak_is_zero_for_an_autoregressive_model_only():
    x = torch.randint(0, 2, (1, 1, 4, 4), generator=torch.Generator().manual_seed(0)).float()
    nade = chapter.perturb(models.create("nade", (1, 4, 4), hidden_size=6, init_seed=0), seed=0)
    maps = chapter.dependency_maps(nade, x)
    assert len(maps) == 16 and torch.equal(maps[5], dependency_map(nade, 5, x))
    assert chapter.future_leak(maps) == 0.0
    assert chapter.future_leak(chapter.dependency_maps(_Dense(16), x)) > 0
