"""Generated Atari frames: determinism, split by episode, preprocessing, the verified cache."""

import dataclasses
import json
import sys

import numpy as np
import pytest

pytest.importorskip("ale_py")

from densitybench.datasets import atari  # noqa: E402  (the module itself, so that monkeypatching reaches it)
from densitybench.data import array_sha256  # noqa: E402

#: a few seconds at most: 6 short episodes of 16x16 frames
TINY = atari.AtariSpec(
    name="tiny_space_invaders",
    game="space_invaders",
    size=16,
    threshold=16,
    crop=(20, 195, 0, 160),
    n_episodes=6,
    max_frames=300,
    keep_every=8,
    seed=3,
)


@pytest.fixture(scope="module")
def tiny():
    return atari.generate(TINY, progress=False)


def test_same_spec_same_frames_other_seed_other_frames(tiny):
    again = atari.generate(TINY, progress=False)
    for s in atari.SPLITS:
        assert array_sha256(again[s]) == array_sha256(tiny[s])
        np.testing.assert_array_equal(again[f"{s}_episode"], tiny[f"{s}_episode"])
    other = atari.generate(dataclasses.replace(TINY, seed=4), progress=False)
    both = np.concatenate([tiny[s] for s in atari.SPLITS])
    other_all = np.concatenate([other[s] for s in atari.SPLITS])
    assert both.shape != other_all.shape or array_sha256(both) != array_sha256(other_all)


def test_an_episode_replays_alone(tiny):
    e = int(tiny["valid_episode"][0])
    alone = atari._play_episode(TINY, e)
    np.testing.assert_array_equal(alone[:, None], tiny["valid"][tiny["valid_episode"] == e])


def test_split_by_episode(tiny):
    ids = {s: set(tiny[f"{s}_episode"].tolist()) for s in atari.SPLITS}
    assert all(ids[s] for s in atari.SPLITS), "every split holds frames"
    assert not ids["train"] & ids["valid"] and not ids["train"] & ids["test"] and not ids["valid"] & ids["test"]
    assert ids["train"] | ids["valid"] | ids["test"] == set(range(TINY.n_episodes))
    planned = TINY.split_episodes()
    assert [len(planned[s]) for s in atari.SPLITS] == [4, 1, 1]
    for s in atari.SPLITS:
        assert ids[s] == set(planned[s].tolist())
        assert len(tiny[f"{s}_episode"]) == len(tiny[s]) == len(tiny[f"{s}_frame"])


def test_frames_are_binary_images(tiny):
    for s in atari.SPLITS:
        x = tiny[s]
        assert x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == (1, 16, 16) and len(x) > 0
        assert set(np.unique(x).tolist()) <= {0, 1}
        assert 0.01 < x.mean() < 0.5  # objects on a black background
        assert (tiny[f"{s}_frame"] % TINY.keep_every == 0).all()
        assert tiny[f"{s}_frame"].max() <= TINY.max_frames


def test_preprocess_crops_resizes_and_thresholds():
    screen = np.zeros((210, 160), dtype=np.uint8)
    screen[0:20] = 255  # the score rows, cropped away
    screen[100:120, 40:80] = 200
    out = atari.preprocess(screen, TINY)
    assert out.shape == (16, 16) and out.dtype == np.uint8
    assert out[0].sum() == 0
    assert 0 < out.sum() < out.size
    assert atari.preprocess(np.zeros((210, 160), np.uint8), TINY).sum() == 0
    with pytest.raises(ValueError, match="screen"):
        atari.preprocess(np.zeros((10, 10), np.uint8), TINY)


def test_cache_round_trip(tiny, tmp_path, monkeypatch):
    ds = atari.load_atari(TINY, cache_dir=tmp_path, progress=False)
    path = tmp_path / "tiny_space_invaders.npz"
    assert path.is_file() and ds.files == {path.name: str(path)}
    assert ds.kind == "binary" and ds.n_levels == 2 and ds.image_shape == (1, 16, 16) and ds.labels is None
    for s in atari.SPLITS:
        np.testing.assert_array_equal(getattr(ds, s).numpy(), tiny[s])
    for word in ("Space Invaders", "random policy", "seeded", "BOX", "level >= 16", "Split by episode"):
        assert word in ds.description
    # the second load reads the file and does not play again
    monkeypatch.setattr(atari, "generate", lambda *a, **k: pytest.fail("regenerated a cached dataset"))
    again = atari.load_atari(TINY, cache_dir=tmp_path)
    for s in atari.SPLITS:
        assert array_sha256(getattr(again, s).numpy()) == array_sha256(tiny[s])
    eps = atari.episodes(TINY, cache_dir=tmp_path)
    for s in atari.SPLITS:
        np.testing.assert_array_equal(eps[s], tiny[f"{s}_episode"])
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
    assert meta["params"] == TINY.params() and meta["ale_py_version"]
    assert meta["sha256"]["train"] == array_sha256(tiny["train"])


def test_cache_with_other_parameters_is_refused(tmp_path):
    atari.load_atari(TINY, cache_dir=tmp_path, progress=False)
    path = tmp_path / "tiny_space_invaders.npz"
    before = path.read_bytes()
    changed = dataclasses.replace(TINY, threshold=40)
    with pytest.raises(atari.AtariCacheError, match=r"other parameters(.|\n)*threshold(.|\n)*delete") as e:
        atari.load_atari(changed, cache_dir=tmp_path)
    assert str(path) in str(e.value)
    assert path.read_bytes() == before, "the file is left as it was"


def test_cache_with_altered_content_is_refused(tmp_path):
    atari.load_atari(TINY, cache_dir=tmp_path, progress=False)
    path = tmp_path / "tiny_space_invaders.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["test"] = arrays["test"].copy()
    arrays["test"][0, 0, 0, 0] ^= 1
    np.savez_compressed(path, **arrays)
    with pytest.raises(atari.AtariCacheError, match=r"checksum mismatch(.|\n)*'test'(.|\n)*delete") as e:
        atari.load_atari(TINY, cache_dir=tmp_path)
    assert str(path) in str(e.value)
    path.write_bytes(b"not a zip file")
    with pytest.raises(atari.AtariCacheError, match="cannot be read"):
        atari.episodes(TINY, cache_dir=tmp_path)


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(atari.CACHE_ENV, raising=False)
    assert atari.cache_dir() == atari.paths.REPO_ROOT / "data" / "generated"
    monkeypatch.setenv(atari.CACHE_ENV, str(tmp_path / "env"))
    assert atari.cache_dir() == (tmp_path / "env").resolve()
    assert atari.cache_dir(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert atari.cache_path("atari_breakout") == (tmp_path / "env" / "atari_breakout.npz").resolve()


def test_missing_ale_py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)
    with pytest.raises(ImportError, match="pip install ale-py"):
        atari.generate(TINY, progress=False)


def test_registry():
    registered = {"atari_space_invaders", "atari_breakout", "atari_space_invaders_64", "atari_breakout_64"}
    assert registered <= set(atari.ATARI)
    for name, spec in atari.ATARI.items():
        assert spec.name == name and spec.size in (28, 64) and spec.note
        assert sum(len(v) for v in spec.split_episodes().values()) == spec.n_episodes
    with pytest.raises(ValueError, match="unknown Atari dataset"):
        atari.load_atari("atari_pong")
    with pytest.raises(ValueError, match="crop"):
        dataclasses.replace(TINY, crop=(0, 300, 0, 160))
    with pytest.raises(ValueError, match="empty"):
        dataclasses.replace(TINY, n_episodes=2).split_episodes()


def test_the_registry_loads_generated_atari_frames(tmp_path, monkeypatch):
    from densitybench import data

    monkeypatch.setenv(atari.CACHE_ENV, str(tmp_path))
    assert "atari_space_invaders" in data.names() and "atari_breakout" in data.names()
    assert data.check(tmp_path)["atari_breakout"].startswith("not generated yet")
    spec = atari.ATARI["atari_breakout"]
    small = dataclasses.replace(spec, n_episodes=7, max_frames=200)
    monkeypatch.setitem(atari.ATARI, "atari_breakout", small)
    ds = data.load("atari_breakout")
    assert ds.kind == "binary" and ds.image_shape == (1, 28, 28) and (tmp_path / "atari_breakout.npz").is_file()
    assert data.check(tmp_path)["atari_breakout"] == "ok"


def test_the_facade_is_the_same_registry_and_functions():
    from densitybench import atari as facade

    assert facade.ATARI is atari.ATARI and facade.AtariSpec is atari.AtariSpec
    for name in ("load_atari", "episodes", "cache_path", "cache_dir", "generate", "preprocess"):
        assert getattr(facade, name) is getattr(atari, name)
