"""Data: checksums, shapes, splits, and the exact errors a user sees."""

import gzip
import shutil

import numpy as np
import pytest
import torch

from densitybench import data, paths
from densitybench.cli import main as cli
from conftest import require_dataset


def test_digits_split_and_levels():
    d = data.load("digits")
    b = data.load("digits_binary")
    assert d.sizes() == b.sizes() == {"train": 1197, "valid": 300, "test": 300}
    assert d.image_shape == (1, 8, 8) and d.n_levels == 17 and d.train.dtype == torch.uint8
    assert int(d.train.max()) == 16 and set(b.train.unique().tolist()) == {0, 1}
    # the binary set is the thresholded grey set, image for image
    assert torch.equal(b.test, (d.test >= data.DIGITS_THRESHOLD).to(torch.uint8))
    # splits are disjoint and fixed
    flat = lambda t: {bytes(r) for r in t.reshape(len(t), -1).numpy()}
    assert torch.equal(data.load("digits").test, d.test)
    assert len(flat(d.train) & flat(d.test)) < 5  # (a few duplicate images exist in the source)


def test_dequantize_stays_in_cell():
    x = torch.randint(0, 256, (100, 1, 4, 4)).to(torch.uint8)
    y = data.dequantize(x, 256, torch.Generator().manual_seed(0))
    assert torch.all((y * 256).floor() == x.float()) and y.min() >= 0 and y.max() < 1


def test_binarized_mnist_content_and_split():
    require_dataset("binarized_mnist")
    d = data.load("binarized_mnist")
    assert d.sizes() == {"train": 50000, "valid": 10000, "test": 10000}
    assert d.image_shape == (1, 28, 28) and d.kind == "binary"
    # counts of ones documented with the files
    assert int(d.train.sum()) == 5118041 and int(d.test.sum()) == 1038896
    assert int(d.train[0].sum()) == 123 and int(d.valid[0].sum()) == 90


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_datasets_content_and_split(name):
    require_dataset(name)
    d = data.load(name)
    assert d.sizes() == {"train": 50000, "valid": 10000, "test": 10000}
    assert d.n_levels == 256 and d.train.dtype == torch.uint8
    raw = gzip.decompress((paths.data_dir() / name / "train-images-idx3-ubyte.gz").read_bytes())
    full = data.read_idx(raw)
    assert torch.equal(d.train[:, 0], torch.from_numpy(full[:50000].copy()))
    assert torch.equal(d.valid[:, 0], torch.from_numpy(full[50000:].copy()))
    if name == "mnist":
        assert abs(d.train.float().mean().item() / 255 - 0.1307) < 1e-3


def test_missing_file_error_names_file_place_and_fetch(tmp_path):
    with pytest.raises(data.DataMissingError) as e:
        data.load("binarized_mnist", tmp_path)
    msg = str(e.value)
    assert "binarized_mnist.npz" in msg
    assert str(tmp_path / "binarized_mnist") in msg
    assert "densitybench data fetch binarized_mnist" in msg
    assert "DENSITYBENCH_DATA" in msg


def test_missing_idx_file_is_named(tmp_path):
    (tmp_path / "mnist").mkdir()
    for f in data.REGISTRY["mnist"].layouts[0][1:]:
        (tmp_path / "mnist" / f.name).write_bytes(b"")
    with pytest.raises(data.DataMissingError, match="missing file\\(s\\) train-images-idx3-ubyte.gz"):
        data.load("mnist", tmp_path)


def _write_fake_binarized(folder):
    """A file with the right layout whose content is not the canonical one."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {s: rng.integers(0, 2, (n, 784), dtype=np.uint8) for s, n in [("train", 5), ("valid", 2), ("test", 2)]}
    np.savez_compressed(folder / "binarized_mnist.npz", **arrays)


def test_corrupt_file_is_refused_with_expected_and_actual(tmp_path):
    _write_fake_binarized(tmp_path / "binarized_mnist")
    before = (tmp_path / "binarized_mnist" / "binarized_mnist.npz").read_bytes()
    with pytest.raises(data.ChecksumError) as e:
        data.load("binarized_mnist", tmp_path)
    msg = str(e.value)
    assert "content checksum mismatch" in msg and "binarized_mnist.npz" in msg
    assert data.REGISTRY["binarized_mnist"].layouts[0][0].check[1]["train"] in msg  # expected value
    actual = data.array_sha256(np.load(tmp_path / "binarized_mnist" / "binarized_mnist.npz")["train"])
    assert actual in msg
    # nothing was changed
    assert (tmp_path / "binarized_mnist" / "binarized_mnist.npz").read_bytes() == before


def test_truncated_gzip_is_reported_as_corrupt(tmp_path):
    require_dataset("mnist")
    dst = tmp_path / "mnist"
    shutil.copytree(paths.data_dir() / "mnist", dst)
    f = dst / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(data.ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        data.load("mnist", tmp_path)


def test_one_flipped_pixel_changes_the_checksum(tmp_path):
    require_dataset("mnist")
    dst = tmp_path / "mnist"
    shutil.copytree(paths.data_dir() / "mnist", dst)
    f = dst / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(f.read_bytes()))
    raw[5000] ^= 1
    f.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(data.ChecksumError) as e:
        data.load("mnist", tmp_path)
    assert "2646ac647ad5339dbf082846283269ea" in str(e.value)  # the canonical MD5


def test_recompressed_canonical_file_loads(tmp_path):
    """Content, not bytes, is verified: the same idx data gzipped anew still loads."""
    require_dataset("mnist")
    dst = tmp_path / "mnist"
    shutil.copytree(paths.data_dir() / "mnist", dst)
    f = dst / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(gzip.compress(gzip.decompress(f.read_bytes()), compresslevel=1))
    assert data.load("mnist", tmp_path).sizes()["test"] == 10000


def test_amat_reader(tmp_path):
    rows = np.random.default_rng(0).integers(0, 2, (3, 6))
    p = tmp_path / "x.amat"
    p.write_text("\n".join(" ".join(map(str, r)) for r in rows) + "\n")
    np.testing.assert_array_equal(data.read_amat(p, 6), rows)
    with pytest.raises(ValueError, match="expected 5 values per line"):
        data.read_amat(p, 5)


def test_read_idx_rejects_bad_magic():
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(b"\x00\x00\x09\x01" + b"\x00" * 8)


def test_fetch_downloads_verifies_and_never_overwrites(tmp_path, monkeypatch):
    require_dataset("mnist")
    # a mirror with the canonical files, reached through file:// URLs
    mirror = paths.data_dir() / "mnist"
    spec = data.REGISTRY["mnist"]
    layout = tuple(
        data.FileSpec(f.name, ("file:///nonexistent/" + f.name, (mirror / f.name).as_uri()), f.check)
        for f in spec.layouts[0]
    )
    monkeypatch.setitem(data.REGISTRY, "mnist", data.DatasetSpec(**{**spec.__dict__, "layouts": (layout,)}))
    target = tmp_path / "dl"
    data.fetch("mnist", target, progress=False)
    assert data.load("mnist", target).sizes()["train"] == 50000
    assert not list((target / "mnist").glob(".fetch-*"))
    # a corrupt file already present is refused, not replaced
    bad = target / "mnist" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    with pytest.raises(data.ChecksumError):
        data.fetch("mnist", target, progress=False)
    assert gzip.decompress(bad.read_bytes()).endswith(b"\x07")


def test_data_check_cli(tmp_path, capsys):
    _write_fake_binarized(tmp_path / "binarized_mnist")
    assert cli(["data", "check", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "digits" in out and "ok" in out
    assert "binarized_mnist" in out and "CORRUPT" in out
    assert "mnist            missing" in out


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        data.load("nope")


def test_labels_follow_the_split():
    require_dataset("mnist")
    d = data.load("mnist")
    assert {k: len(v) for k, v in d.labels.items()} == {"train": 50000, "valid": 10000, "test": 10000}
    assert d.labels["train"][:5].tolist() == [5, 0, 4, 1, 9]  # the first digits of the training file
    assert d.labels["test"][:3].tolist() == [7, 2, 1]
    digits = data.load("digits")
    assert all(len(digits.labels[s]) == len(getattr(digits, s)) for s in ("train", "valid", "test"))


def test_stochastic_binarization_is_seeded_and_keeps_labels():
    d = data.load("digits")
    a, b = data.binarize_stochastic(d, 3), data.binarize_stochastic(d, 3)
    assert torch.equal(a.train, b.train) and a.kind == "binary"
    assert not torch.equal(a.train, data.binarize_stochastic(d, 4).train)
    # the probability of a 1 is level / 16: the mean matches
    assert abs(a.train.float().mean().item() - (d.train.float() / 16).mean().item()) < 0.01
    assert a.labels is d.labels
    # the derived name loads the same images again
    assert torch.equal(data.load(a.name).train, a.train)
    with pytest.raises(ValueError, match="already binary"):
        data.binarize_stochastic(a)


def test_column_major_reader_output_loads_c_contiguous(tmp_path):
    """A reader that hands over column-major or transposed arrays: the splits come out in C
    order, with the same content and checksums."""
    from densitybench.datasets.files import load_files

    g = np.random.default_rng(0)
    splits = ("train", "valid", "test")
    arrays = {s: np.asfortranarray(g.integers(0, 2, (n, 12), dtype=np.uint8)) for s, n in zip(splits, (6, 3, 4))}
    (tmp_path / "toy").mkdir()
    np.savez(tmp_path / "toy" / "toy.npz", **arrays)
    checks = {s: data.array_sha256(a) for s, a in arrays.items()}
    spec = data.DatasetSpec(
        name="toy", folder="toy", kind="binary", n_levels=2, image_shape=(1, 3, 4),
        layouts=((data.FileSpec("toy.npz", (), ("sha256-arrays", checks)),),),
        reader=lambda spec, a: (a["toy.npz"]["train"], a["toy.npz"]["valid"].T.copy().T, a["toy.npz"]["test"]),
        description="", citation="",
    )
    d = load_files(spec, tmp_path)
    for s, a in arrays.items():
        t = getattr(d, s)
        assert t.is_contiguous() and t.shape == (len(a), 1, 3, 4)
        assert torch.equal(t.reshape(len(a), -1), torch.from_numpy(np.ascontiguousarray(a)))
        assert data.array_sha256(t.numpy()) == checks[s]


@pytest.mark.parametrize("name", ["binarized_mnist", "caltech101_silhouettes", "mnist"])
def test_file_dataset_splits_are_c_contiguous_with_the_readers_content(name):
    """The splits are C-contiguous and hold what the reader gives (the binarized MNIST .npz
    and the Caltech silhouettes come column-major)."""
    require_dataset(name)
    spec = data.REGISTRY[name]
    layout, folder = data._find_layout(spec, paths.data_dir())
    raw = spec.reader(spec, {f.name: data._verify(spec, f, folder / f.name) for f in layout})
    d = data.load(name)
    for s, a in zip(("train", "valid", "test"), raw[:3]):
        t = getattr(d, s)
        assert t.is_contiguous()
        assert torch.equal(t, torch.from_numpy(np.array(a, dtype=np.uint8)).reshape(t.shape))
    if name == "binarized_mnist":
        from densitybench.datasets.binarized_mnist import BINARIZED_SHA256

        assert {s: data.array_sha256(getattr(d, s).numpy()) for s in BINARIZED_SHA256} == BINARIZED_SHA256
