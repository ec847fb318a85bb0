"""UCI binary sets of NADE/MADE, Caltech-101 Silhouettes and image folders: parsers,
verification, orientation, and the errors a user sees."""

import numpy as np
import pytest
import torch

from densitybench import data, paths
from conftest import require_dataset

#: (D, train, valid, test) of the NADE paper's table
UCI_SIZES = {
    "adult": (123, 5000, 1414, 26147),
    "connect4": (126, 16000, 4000, 47557),
    "dna": (180, 1400, 600, 1186),
    "mushrooms": (112, 2000, 500, 5624),
    "nips": (500, 400, 100, 1240),
    "ocr_letters": (128, 32152, 10000, 10000),
    "rcv1": (150, 40000, 10000, 150000),
    "web": (300, 14000, 3188, 32561),
}
VERIFIED_UCI = ("adult", "dna", "mushrooms", "nips")
SPLITS = ("train", "valid", "test")


def require_file(*parts):
    """The path of a file in the data directory; skip (with the reason) when it is absent."""
    p = paths.data_dir().joinpath(*parts)
    if not p.is_file():
        pytest.skip(f"{p} is not in the data directory {paths.data_dir()} (set DENSITYBENCH_DATA)")
    return p


def libsvm_text(x: np.ndarray, labels=None) -> str:
    """Binary rows as LIBSVM lines: ``label idx:1 ...`` with 1-based indices."""
    labels = np.ones(len(x), dtype=int) if labels is None else labels
    return "".join(
        f"{int(y):+d} " + " ".join(f"{k + 1}:1" for k in np.flatnonzero(r)) + "\n" for r, y in zip(x, labels)
    )


def amat_text(x: np.ndarray, target: bool) -> str:
    extra = lambda i: f" {i % 3}" if target else ""  # noqa: E731
    return "".join(" ".join(map(str, r)) + extra(i) + "\n" for i, r in enumerate(x))


# --------------------------------------------------------------------------- parsers


def test_libsvm_reader_matches_the_array_it_encodes(tmp_path):
    x = np.random.default_rng(0).integers(0, 2, (7, 9)).astype(np.uint8)
    x[2] = 0  # a line with a label only
    x[:, -1] = 0  # the last feature never occurs: the width still comes from n_dims
    p = tmp_path / "a_train.libsvm"
    lines = libsvm_text(x).splitlines()
    lines[0] = " ".join([lines[0].split()[0]] + lines[0].split()[1:][::-1])  # order does not matter
    p.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")  # a blank line is skipped
    got = data.read_libsvm(p, 9)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, x)
    # explicit zeros and 1.0 are accepted
    p.write_text("-1 1:1.0 3:0 4:1\n")
    np.testing.assert_array_equal(data.read_libsvm(p, 4), [[1, 0, 0, 1]])


@pytest.mark.parametrize(
    "text, message",
    [
        ("+1 1:1\n-1 2:1 3:2\n", r"a_train.libsvm, line 2: feature 3 has value 2; binary data must hold only 0 and 1"),
        ("+1 1:1\n+1 5:1\n", r"a_train.libsvm, line 2: feature index 5 outside 1..4"),
        ("+1 0:1\n", r"a_train.libsvm, line 1: feature index 0 outside 1..4"),
        ("+1 1:1 2\n", r"a_train.libsvm, line 1: '2' is not an 'index:value' pair"),
        ("1:1 2:1\n", r"a_train.libsvm, line 1: the line does not start with a label"),
        ("", r"a_train.libsvm: no examples"),
    ],
)
def test_libsvm_reader_errors_name_file_and_line(tmp_path, text, message):
    p = tmp_path / "a_train.libsvm"
    p.write_text(text)
    with pytest.raises(ValueError, match=message):
        data.read_libsvm(p, 4)


def test_amat_reader_with_and_without_the_bidon_target(tmp_path):
    x = np.random.default_rng(1).integers(0, 2, (5, 6)).astype(np.uint8)
    plain, bidon = tmp_path / "plain.amat", tmp_path / "bidon.amat"
    plain.write_text(amat_text(x, target=False))
    bidon.write_text(amat_text(x, target=True))
    np.testing.assert_array_equal(data.read_amat(plain, 6), x)
    np.testing.assert_array_equal(data.read_amat(bidon, 6, has_target=True), x)
    # the target column is never taken for data, nor is a missing one tolerated
    with pytest.raises(ValueError, match=r"bidon.amat, line 1: expected 6 values per line, got 7"):
        data.read_amat(bidon, 6)
    with pytest.raises(ValueError, match=r"plain.amat, line 1: expected 7 values per line \(6 values and a target\)"):
        data.read_amat(plain, 6, has_target=True)
    # a value other than 0/1 in the data is refused (a target may be anything)
    bad = tmp_path / "bad.amat"
    bad.write_text("0 1 0 1 0 1 7\n0 1 0.5 1 0 1 7\n")
    with pytest.raises(ValueError, match=r"bad.amat, line 2: value 0.5 in column 3"):
        data.read_amat(bad, 6, has_target=True)


def test_ocr_letters_reader_chunks_letters(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 2, (5, 128)).astype(np.uint8)
    targets = rng.integers(0, 26, 5)
    letter = lambda i: " ".join(map(str, x[i])) + f" {targets[i]}"  # noqa: E731
    p = tmp_path / "ocr_letters_train.txt"
    # one letter, then a word of three letters, then one letter
    p.write_text(letter(0) + "\n" + " ".join(letter(i) for i in (1, 2, 3)) + "\n" + letter(4) + "\n")
    got = data.read_ocr_letters(p)
    assert got.shape == (5, 128) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, x)
    p.write_text(letter(0) + "\n" + letter(1) + " 0 1 1\n")
    with pytest.raises(ValueError, match=r"ocr_letters_train.txt, line 2: 132 values .* 3 left over"):
        data.read_ocr_letters(p)


# --------------------------------------------------------------------------- registry


def test_uci_registry_sizes_urls_and_checks():
    for name, (d, *sizes) in UCI_SIZES.items():
        spec = data.REGISTRY[name]
        assert spec.folder == "uci_binary" and spec.kind == "binary" and spec.n_levels == 2
        assert spec.image_shape == (1, 1, d)
        npz, canonical = spec.layouts
        assert npz[0].name == f"{name}.npz" and spec.fetch_layout() == npz
        assert npz[0].urls[0].startswith("https://")
        assert all(f.urls[0].startswith("http://www.cs.toronto.edu/~larocheh/public/datasets/") for f in canonical)
        kind = "sha256-arrays" if name in VERIFIED_UCI else "shape"
        assert npz[0].check[0] == kind and all(f.check[0] == kind for f in canonical)
        if kind == "shape":
            assert npz[0].check[1] == {s: (n, d) for s, n in zip(SPLITS, sizes)}
            assert "content checksum is not recorded yet" in spec.description
        else:  # the same checksums for both layouts
            assert [f.check[1]["split"] for f in canonical] == [npz[0].check[1][s] for s in SPLITS]
        assert f"{sizes[0]:,} train / {sizes[1]:,} valid / {sizes[2]:,} test" in spec.description
    assert data.REGISTRY["rcv1"].layouts[0][0].urls == (
        "https://github.com/mgermain/MADE/releases/download/ICML2015/rcv1.npz",
    )
    assert [f.name for f in data.REGISTRY["nips"].layouts[1]] == [
        f"nips-0-12_all_shuffled_bidon_target_{s}.amat" for s in SPLITS
    ]


def test_missing_uci_file_names_file_folder_and_fetch(tmp_path):
    with pytest.raises(data.DataMissingError) as e:
        data.load("dna", tmp_path)
    msg = str(e.value)
    assert "dna.npz" in msg and "dna_scale_train.libsvm" in msg
    assert str(tmp_path / "uci_binary") in msg
    assert "densitybench data fetch dna" in msg


# --------------------------------------------------------------------------- shape-checked sets


def _write_npz(path, arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def _uci_arrays(name, fill=0, dtype=np.uint8):
    d, *sizes = UCI_SIZES[name]
    return {s: np.full((n, d), fill, dtype=dtype) for s, n in zip(SPLITS, sizes)}


def test_shape_checked_set_loads_made_npz_with_float_values(tmp_path):
    arrays = _uci_arrays("connect4", dtype=np.float32)
    arrays["train"][0, :3] = 1.0
    # MADE's own key names, floats, and extra arrays
    made = {f"{s}_data": a for s, a in arrays.items()} | {"inputsize": np.array(126)}
    _write_npz(tmp_path / "uci_binary" / "connect4.npz", made)
    d = data.load("connect4", tmp_path)
    assert d.sizes() == {"train": 16000, "valid": 4000, "test": 47557}
    assert d.train.dtype == torch.uint8 and d.train.shape == (16000, 1, 1, 126)
    assert d.train[0, 0, 0, :4].tolist() == [1, 1, 1, 0] and int(d.train.sum()) == 3


def test_shape_checked_set_refuses_wrong_shape(tmp_path):
    arrays = _uci_arrays("connect4")
    arrays["valid"] = arrays["valid"][:-1]
    _write_npz(tmp_path / "uci_binary" / "connect4.npz", arrays)
    with pytest.raises(data.ChecksumError) as e:
        data.load("connect4", tmp_path)
    msg = str(e.value)
    assert "shape mismatch" in msg and "connect4.npz" in msg and "'valid'" in msg
    assert "(4000, 126)" in msg and "(3999, 126)" in msg
    assert "No content checksum is recorded for connect4 yet" in msg


def test_shape_checked_set_refuses_non_binary_values(tmp_path):
    arrays = _uci_arrays("connect4")
    arrays["test"][5, 5] = 2
    _write_npz(tmp_path / "uci_binary" / "connect4.npz", arrays)
    with pytest.raises(data.ChecksumError, match=r"connect4.npz \(array 'test'\) holds values other than 0 and 1"):
        data.load("connect4", tmp_path)
    arrays = _uci_arrays("connect4", dtype=np.float32)
    arrays["train"][0, 0] = 0.5  # would silently become 0 in a plain cast to uint8
    _write_npz(tmp_path / "uci_binary" / "connect4.npz", arrays)
    with pytest.raises(data.ChecksumError, match="not integers 0..255"):
        data.load("connect4", tmp_path)


def test_shape_checked_canonical_layout(tmp_path):
    """Larochelle's files of a shape-checked set: parsed, then refused for a wrong size."""
    folder = tmp_path / "uci_binary"
    folder.mkdir()
    x = np.random.default_rng(3).integers(0, 2, (20, 126)).astype(np.uint8)
    for s in SPLITS:
        (folder / f"connect-4_{s}.libsvm").write_text(libsvm_text(x))
    with pytest.raises(data.ChecksumError) as e:
        data.load("connect4", tmp_path)
    assert "connect-4_train.libsvm" in str(e.value) and "(16000, 126)" in str(e.value)
    # a parse error in a canonical file names the file and the line
    (folder / "connect-4_train.libsvm").write_text("+1 1:1\n+1 2:3\n")
    with pytest.raises(data.ChecksumError, match=r"connect-4_train.libsvm, line 2: feature 2 has value 3"):
        data.load("connect4", tmp_path)


def test_verified_set_refuses_changed_content(tmp_path):
    arrays = _uci_arrays("nips")
    _write_npz(tmp_path / "uci_binary" / "nips.npz", arrays)
    with pytest.raises(data.ChecksumError) as e:
        data.load("nips", tmp_path)
    assert "content checksum mismatch" in str(e.value) and "nips.npz" in str(e.value)
    assert data.REGISTRY["nips"].layouts[0][0].check[1]["train"] in str(e.value)


# --------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name", VERIFIED_UCI)
def test_staged_uci_sets(name):
    require_dataset(name)
    d = data.load(name)
    dim, *sizes = UCI_SIZES[name]
    assert d.sizes() == dict(zip(SPLITS, sizes))
    assert d.image_shape == (1, 1, dim) and d.n_dims == dim and d.kind == "binary"
    for s in SPLITS:
        x = getattr(d, s)
        assert x.dtype == torch.uint8 and set(x.unique().tolist()) <= {0, 1}
    assert set(d.train.unique().tolist()) == {0, 1}
    if name == "adult":  # feature 123 occurs only in the test file
        assert int(d.train[..., 122].sum()) == int(d.valid[..., 122].sum()) == 0 and int(d.test[..., 122].sum()) > 0


@pytest.mark.parametrize("name", VERIFIED_UCI)
def test_canonical_layout_gives_the_npz_checksums(name, tmp_path):
    """Larochelle's text files written from the staged arrays load through the canonical
    layout, i.e. they parse to arrays with the recorded checksums."""
    src = require_file("uci_binary", f"{name}.npz")
    spec = data.REGISTRY[name]
    folder = tmp_path / "uci_binary"
    folder.mkdir()
    with np.load(src) as z:
        arrays = {s: z[s] for s in SPLITS}
        labels = {s: z[f"{s}_labels"] for s in SPLITS} if "train_labels" in z.files else {}
    for f, s in zip(spec.layouts[1], SPLITS):
        if f.name.endswith(".libsvm"):
            text = libsvm_text(arrays[s], labels.get(s))
        else:
            text = amat_text(arrays[s], target=True)
        (folder / f.name).write_text(text)
    d = data.load(name, tmp_path)
    assert sorted(d.files) == sorted(f.name for f in spec.layouts[1])  # the canonical layout was read
    for f, s in zip(spec.layouts[1], SPLITS):
        got = getattr(d, s).reshape(len(arrays[s]), -1).numpy()
        assert data.array_sha256(got) == f.check[1]["split"] == spec.layouts[0][0].check[1][s]


def test_caltech_silhouettes_content_orientation_and_labels():
    require_dataset("caltech101_silhouettes")
    import scipy.io

    d = data.load("caltech101_silhouettes")
    assert d.sizes() == {"train": 4100, "valid": 2264, "test": 2307}
    assert d.image_shape == (1, 28, 28) and d.kind == "binary" and d.n_levels == 2
    assert set(d.train.unique().tolist()) == {0, 1}
    # 1 = object after the flip: the border is background (0) in almost every image
    border = torch.cat([d.train[:, 0, 0], d.train[:, 0, -1], d.train[:, 0, :, 0], d.train[:, 0, :, -1]], 1).float()
    assert border.mean() < 0.05 and (border.mean(1) < 0.5).float().mean() > 0.95
    # the object covers a fair part of the image (it would be the complement without the flip)
    assert 0.2 < d.train.float().mean() < 0.6
    # labels 0..100, every class present
    y = torch.cat([d.labels[s] for s in SPLITS])
    assert int(y.min()) == 0 and int(y.max()) == 100 and len(y.unique()) == 101
    # upright, not transposed: the mean face is left-right symmetric, not up-down
    m = scipy.io.loadmat(paths.data_dir() / "caltech101_silhouettes" / "caltech101_silhouettes_28_split1.mat")
    names = [c[0] for c in m["classnames"][0]]
    faces = d.train[d.labels["train"] == names.index("Faces 2"), 0].float().mean(0)
    left_right = (faces - faces.flip(1)).abs().mean()
    up_down = (faces - faces.flip(0)).abs().mean()
    assert left_right < up_down / 2
    # the same as reading each row in Fortran (column-major) order and flipping
    np.testing.assert_array_equal(d.valid[:, 0].numpy(), 1 - m["val_data"].reshape(-1, 28, 28, order="F"))
    np.testing.assert_array_equal(d.test.shape, (2307, 1, 28, 28))


def test_caltech_changed_pixel_is_refused(tmp_path):
    src = require_file("caltech101_silhouettes", "caltech101_silhouettes_28_split1.mat")
    import scipy.io

    m = {k: v for k, v in scipy.io.loadmat(src).items() if not k.startswith("__")}
    m["test_data"] = m["test_data"].copy()
    m["test_data"][10, 100] ^= 1
    (tmp_path / "caltech101_silhouettes").mkdir()
    bad = tmp_path / "caltech101_silhouettes" / "caltech101_silhouettes_28_split1.mat"
    scipy.io.savemat(bad, m)
    with pytest.raises(data.ChecksumError) as e:
        data.load("caltech101_silhouettes", tmp_path)
    assert "caltech101_silhouettes_28_split1.mat (array 'test_data')" in str(e.value)
    # a file that is not a .mat at all is reported as corrupt, by name
    bad.write_bytes(b"not a mat file")
    with pytest.raises(data.ChecksumError, match="caltech101_silhouettes_28_split1.mat cannot be read"):
        data.load("caltech101_silhouettes", tmp_path)


# --------------------------------------------------------------------------- image folders


def _png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    """12 PNGs in two subfolders, of two sizes; image i is constant at level 20 * i."""
    root = tmp_path / "images"
    for i in range(12):
        shape = (10, 20) if i % 2 else (30, 15)
        _png(root / f"part{i % 2}" / f"img{i:02d}.png", np.full(shape, 20 * i))
    (root / "notes.txt").write_text("not an image")
    return root


def _levels(ds, split):
    """The constant level of each image of a split, from its file name."""
    return [20 * int(f.split("img")[1][:2]) for f in ds.files[split]]


def test_image_folder_resizes_and_splits(folder):
    ds = data.load_image_folder(folder, size=(8, 6), n_valid=0.25, n_test=0.25, seed=0)
    assert ds.kind == "levels" and ds.n_levels == 256 and ds.image_shape == (1, 8, 6)
    assert ds.sizes() == {"train": 6, "valid": 3, "test": 3}
    assert ds.train.dtype == torch.uint8 and ds.train.shape == (6, 1, 8, 6)
    assert sorted(sum(ds.files.values(), [])) == sorted(f"part{i % 2}/img{i:02d}.png" for i in range(12))
    for s in SPLITS:  # a constant image stays constant through the resize
        x = getattr(ds, s)
        assert x.reshape(len(x), -1).float().std(1).max() == 0
        assert x[:, 0, 0, 0].tolist() == _levels(ds, s)
    assert "LANCZOS" in ds.description and "6 train / 3 valid / 3 test" in ds.description


def test_image_folder_split_is_fixed_by_the_seed(folder):
    a = data.load_image_folder(folder, size=(4, 4), seed=5)
    b = data.load_image_folder(folder, size=(4, 4), seed=5)
    assert a.files == b.files and all(torch.equal(getattr(a, s), getattr(b, s)) for s in SPLITS)
    assert a.sizes() == {"train": 10, "valid": 1, "test": 1}  # round(0.1 * 12) = 1
    others = [data.load_image_folder(folder, size=(4, 4), seed=s).files for s in range(6, 12)]
    assert any(o != a.files for o in others)


def test_image_folder_binarization(folder):
    ds = data.load_image_folder(folder, size=(5, 5), binarize=100)
    assert ds.kind == "binary" and ds.n_levels == 2
    for s in SPLITS:
        x = getattr(ds, s)
        assert x[:, 0, 0, 0].tolist() == [int(v >= 100) for v in _levels(ds, s)]
        assert set(x.unique().tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="threshold in 1..255"):
        data.load_image_folder(folder, binarize=0)


def test_image_folder_native_size_and_rgb(tmp_path):
    rng = np.random.default_rng(4)
    arrays = [rng.integers(0, 256, (6, 7)) for _ in range(4)]
    for i, a in enumerate(arrays):
        _png(tmp_path / "same" / f"{i}.png", a)
    ds = data.load_image_folder(tmp_path / "same", size=None, n_valid=0, n_test=0.25)
    assert ds.image_shape == (1, 6, 7) and ds.sizes() == {"train": 3, "valid": 0, "test": 1}
    for s in ("train", "test"):  # pixels are kept exactly when not resized
        for x, f in zip(getattr(ds, s), ds.files[s]):
            np.testing.assert_array_equal(x[0].numpy(), arrays[int(f[0])])
    rgb = data.load_image_folder(tmp_path / "same", size=(3, 3), grey=False)
    assert rgb.image_shape == (3, 3, 3) and rgb.train.shape[1:] == (3, 3, 3)


def test_load_image_folder_by_name(folder, tmp_path):
    ds = data.load(f"image_folder:{folder}")
    assert ds.image_shape == (1, 64, 64) and sum(ds.sizes().values()) == 12
    assert ds.name == f"image_folder:{folder.resolve()}"
    # a relative path is taken inside the data directory
    rel = data.load("image_folder:images", data_dir=tmp_path)
    assert rel.files == ds.files and torch.equal(rel.train, ds.train)


def test_an_image_folder_name_carries_its_settings(folder, tmp_path):
    # what a run on the folder stores as its dataset, so that the run can be trained again from its spec
    name = data.image_folder_name("images", size=(5, 4), binarize=100, seed=3)
    assert name == "image_folder:images?size=5x4&binarize=100&seed=3"
    assert data.image_folder_name("images") == "image_folder:images"
    assert data.parse_image_folder_name(name) == ("images", {"size": (5, 4), "binarize": 100, "seed": 3})
    ds = data.load(name, data_dir=tmp_path)
    direct = data.load_image_folder(folder, size=(5, 4), binarize=100, seed=3)
    assert ds.kind == "binary" and ds.files == direct.files and torch.equal(ds.train, direct.train)
    assert ds.name == f"image_folder:{folder.resolve()}?size=5x4&binarize=100&seed=3"
    assert data.parse_image_folder_name("image_folder:a?b?grey=0&size=none") == ("a?b", {"grey": False, "size": None})
    with pytest.raises(ValueError, match="unknown setting 'colour=1'"):
        data.load("image_folder:images?colour=1", data_dir=tmp_path)
    with pytest.raises(ValueError, match="malformed size"):
        data.parse_image_folder_name("image_folder:images?size=5")


def test_image_folder_errors(folder, tmp_path):
    with pytest.raises(data.DataMissingError, match=r"image folder .*nowhere does not exist"):
        data.load_image_folder(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("x")
    with pytest.raises(data.ImageFolderError) as e:
        data.load_image_folder(empty)
    assert f"no images in {empty}" in str(e.value) and ".png" in str(e.value) and ".jpg" in str(e.value)
    # a corrupt image is named
    bad = folder / "part1" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(data.ImageFolderError, match=r"part1/broken.png: cannot read this image"):
        data.load_image_folder(folder)
    bad.unlink()
    # mixed sizes without resizing: one file of each size is named, with its size
    with pytest.raises(data.ImageFolderError) as e:
        data.load_image_folder(folder, size=None)
    msg = str(e.value)
    assert "img00.png is 30x15" in msg and "img01.png is 10x20" in msg and "size=(height, width)" in msg
