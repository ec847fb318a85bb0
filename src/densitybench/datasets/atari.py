"""Binarized Atari frames, generated offline with the Arcade Learning Environment.

The study began with MADE and PCA + GMM trained on binarized Space Invaders frames. This
module makes such data reproducibly, without downloading anything: the emulator and the
game ROMs ship with the ``ale-py`` package (Bellemare et al., "The Arcade Learning
Environment", JAIR 2013).

How a dataset is made (every number is a field of its :class:`AtariSpec`):

* **Policy.** A uniformly random policy over the game's *minimal* action set: at each
  decision one action is drawn uniformly, independently of the screen, and held for
  ``action_repeat`` emulator frames (4, the frame skip of Mnih et al., Nature 2015). Sticky
  actions are off (``repeat_action_probability = 0``, cf. Machado et al., JAIR 2018), so an
  episode is a deterministic function of its seed. Episode ``e`` uses the seed
  ``seed * 1000 + e`` for both the policy's generator (``numpy.random.default_rng``) and
  ALE's ``random_seed``, so any episode can be replayed alone. In Breakout the ball is
  launched by FIRE, which the random policy presses (one action in four).
* **Episodes.** An episode runs from ``reset_game()`` until game over or ``max_frames``
  emulator frames, whichever comes first.
* **Frames.** One emulator frame in ``keep_every`` is kept (frame ``t`` with
  ``t % keep_every == 0``, counting from 1 after the reset), to thin out near-duplicates.
  A kept frame is the pixel-wise maximum of the screens of frames ``t - 1`` and ``t``
  (Mnih et al. 2015): Space Invaders draws its shots on alternate frames only, and a single
  screen would miss them on a fixed phase.
* **Preprocessing.** ``ALEInterface.getScreenGrayscale()`` (210 x 160, levels 0..255) ->
  crop to the playing field (``crop``: the score and, per game, the ground or walls are cut)
  -> resize to ``size x size`` with Pillow's ``BOX`` filter (area average; the aspect ratio
  is *not* preserved) -> binary pixel ``= level >= threshold``. The background of both
  games is exactly 0, so it stays 0 for any threshold >= 1; the threshold trades how much
  small objects (shots, ball) survive the area average against how much neighbours merge.
* **Split.** By episode, never by frame: a permutation of the episode indices drawn with
  ``numpy.random.default_rng(seed)`` is cut into train / valid / test by ``fractions``
  (rounded, the test split takes the rest). Within a split, frames are ordered by episode
  index, then time. Every frame's episode index is stored (:func:`episodes`).

A dataset is generated once and cached as ``<cache_dir>/<name>.npz`` (:func:`cache_dir`:
an argument, else ``$DENSITYBENCH_CACHE``, else ``<repo>/data/generated``), holding the
generation parameters (JSON), the ale-py version that made it and the SHA-256 of every
array. A cached file whose parameters differ from the spec, or whose content does not
match its checksums, is never used or overwritten: the error names it and says to delete it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .. import paths
from .core import DataError, ImageData, array_sha256
from .registry import Source, register

__all__ = [
    "AtariSpec",
    "AtariCacheError",
    "ATARI",
    "CACHE_ENV",
    "SPLITS",
    "cache_dir",
    "cache_path",
    "preprocess",
    "generate",
    "load_atari",
    "episodes",
    "AtariSource",
    "SOURCE",
]

#: Environment variable that names the cache of generated datasets.
CACHE_ENV = "DENSITYBENCH_CACHE"

SPLITS = ("train", "valid", "test")  # the order of core.SPLITS

#: Size of the raw ALE screen, (rows, columns).
SCREEN_SHAPE = (210, 160)

#: Episode ``e`` of a spec with seed ``s`` is seeded with ``s * EPISODE_SEED_STRIDE + e``.
EPISODE_SEED_STRIDE = 1000

#: Version of the file layout written by :func:`load_atari`.
FORMAT_VERSION = 1


class AtariCacheError(DataError, ValueError):
    """A cached dataset file does not match its spec or its own checksums."""


@dataclass(frozen=True)
class AtariSpec:
    """Everything that determines a generated Atari dataset (see the module docstring).

    Attributes:
        name: registry name; also the cache file's stem.
        game: ALE ROM name, as for ``ale_py.roms.get_rom_path`` (e.g. ``"space_invaders"``).
        size: side of the square output image, H = W.
        threshold: a pixel is 1 where the resized grey level (0..255) is ``>= threshold``.
        crop: ``(top, bottom, left, right)`` slice bounds into the 210 x 160 screen,
            ``screen[top:bottom, left:right]``.
        n_episodes: number of episodes played (at most 1000).
        max_frames: at most this many emulator frames per episode.
        keep_every: keep one emulator frame in ``keep_every``.
        action_repeat: emulator frames each drawn action is held for.
        policy: ``"uniform_random"``, the only one: uniform over the minimal action set.
        seed: master seed (episode seeds and the split permutation derive from it).
        fractions: (train, valid, test) fractions of the episodes.
        note: why the crop and threshold were chosen (prose, not a generation parameter).
    """

    name: str
    game: str
    size: int
    threshold: int
    crop: tuple[int, int, int, int]
    n_episodes: int
    max_frames: int
    keep_every: int
    action_repeat: int = 4
    policy: str = "uniform_random"
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    note: str = ""

    def __post_init__(self):
        top, bottom, left, right = self.crop
        if not (0 <= top < bottom <= SCREEN_SHAPE[0] and 0 <= left < right <= SCREEN_SHAPE[1]):
            raise ValueError(f"{self.name}: crop {self.crop} is not inside the {SCREEN_SHAPE} screen")
        if not 1 <= self.threshold <= 255:
            raise ValueError(f"{self.name}: threshold must be in 1..255, not {self.threshold}")
        if self.policy != "uniform_random":
            raise ValueError(f"{self.name}: unknown policy {self.policy!r}; the only one is 'uniform_random'")
        if not 1 <= self.n_episodes <= EPISODE_SEED_STRIDE:
            raise ValueError(f"{self.name}: n_episodes must be in 1..{EPISODE_SEED_STRIDE}, not {self.n_episodes}")
        for field_name in ("size", "max_frames", "keep_every", "action_repeat"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"{self.name}: {field_name} must be >= 1")
        if self.seed < 0:
            raise ValueError(f"{self.name}: seed must be >= 0")
        if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1) > 1e-9:
            raise ValueError(f"{self.name}: fractions {self.fractions} must be three non-negative numbers summing to 1")

    def params(self) -> dict:
        """The generation parameters as a JSON-able dict (every field but ``note``)."""
        d = asdict(self)
        d.pop("note")
        d["crop"] = list(self.crop)
        d["fractions"] = list(self.fractions)
        return d

    def episode_seed(self, episode: int) -> int:
        """The seed of episode ``episode`` (policy generator and ALE ``random_seed``)."""
        return self.seed * EPISODE_SEED_STRIDE + episode

    def split_episodes(self) -> dict[str, np.ndarray]:
        """The episode indices of each split, sorted; ``{split: int64 array}``.

        Raises:
            ValueError: a split would get no episode.
        """
        perm = np.random.default_rng(self.seed).permutation(self.n_episodes)
        n_train = int(round(self.fractions[0] * self.n_episodes))
        n_valid = int(round(self.fractions[1] * self.n_episodes))
        cut = {"train": perm[:n_train], "valid": perm[n_train : n_train + n_valid], "test": perm[n_train + n_valid :]}
        empty = [s for s in SPLITS if len(cut[s]) == 0]
        if empty:
            raise ValueError(
                f"{self.name}: {self.n_episodes} episodes split by {self.fractions} leave "
                f"{', '.join(empty)} empty; use more episodes"
            )
        return {s: np.sort(cut[s]).astype(np.int64) for s in SPLITS}


# --------------------------------------------------------------------------- registry

_SPACE_INVADERS_CROP = (20, 195, 0, 160)
_SPACE_INVADERS_NOTE = (
    "Rows 20:195 of the screen are kept: the score (rows 10-19) and the ground bar (rows "
    "195-209) are cut, the full width is kept. On a black background the invaders (grey "
    "level 122), shields (107) and cannon (98) stay visible; the threshold is the one at "
    "which the invader rows stay apart while most 1-pixel-wide shots (level 142) survive "
    "the area average."
)
_BREAKOUT_CROP = (32, 196, 8, 152)
_BREAKOUT_NOTE = (
    "Rows 32:196 and columns 8:152 of the screen are kept: the score (rows 5-14), the top "
    "wall (rows 17-31) and the side walls (columns 0-7 and 152-159) are cut. The six rows "
    "of bricks (levels 85-148) form one solid band with holes where bricks were hit; the "
    "paddle and the 2 x 4-pixel ball are level 110. The threshold is low enough that the "
    "ball survives the area average wherever it falls across cell boundaries. A random "
    "policy clears few bricks, so most frames differ only by the ball, the paddle and "
    "a few holes."
)

ATARI: dict[str, AtariSpec] = {}


def _register(spec: AtariSpec) -> None:
    ATARI[spec.name] = spec


# game -> (crop, episodes, keep_every, note, {size: threshold}); the 28x28 sets fit CPU runs,
# the 64x64 ones (same episodes and frames) are for GPU runs
_GAMES = {
    "space_invaders": (_SPACE_INVADERS_CROP, 60, 8, _SPACE_INVADERS_NOTE, {28: 16, 64: 24}),
    "breakout": (_BREAKOUT_CROP, 100, 4, _BREAKOUT_NOTE, {28: 4, 64: 8}),
}
for _game, (_crop, _n_episodes, _keep_every, _note, _thresholds) in _GAMES.items():
    for _size, _threshold in _thresholds.items():
        _register(AtariSpec(
            name=f"atari_{_game}" + ("" if _size == 28 else f"_{_size}"), game=_game, size=_size,
            threshold=_threshold, crop=_crop, n_episodes=_n_episodes, max_frames=4000, keep_every=_keep_every,
            note=_note,
        ))


def _spec(name_or_spec: str | AtariSpec) -> AtariSpec:
    if isinstance(name_or_spec, AtariSpec):
        return name_or_spec
    if name_or_spec not in ATARI:
        raise ValueError(f"unknown Atari dataset {name_or_spec!r}; known: {', '.join(ATARI)}")
    return ATARI[name_or_spec]


# --------------------------------------------------------------------------- generation


def _ale_py():
    """Import ``ale_py`` or say how to install it."""
    try:
        import ale_py
        import ale_py.roms  # noqa: F401  (a submodule, not imported by the package)
    except ImportError as e:
        raise ImportError(
            "generating Atari frames needs the Arcade Learning Environment, which is not "
            "installed; install it with `pip install ale-py` (the game ROMs ship with it)"
        ) from e
    return ale_py


def _ale_version() -> str:
    return str(getattr(_ale_py(), "__version__", "unknown"))


def preprocess(screen: np.ndarray, spec: AtariSpec) -> np.ndarray:
    """Crop, resize and binarize one grey screen.

    Args:
        screen: ``uint8`` grey levels, shape ``(210, 160)`` (``getScreenGrayscale()``).
        spec: supplies ``crop``, ``size`` and ``threshold``.

    Returns:
        ``uint8`` array of 0/1, shape ``(size, size)``.
    """
    from PIL import Image

    if screen.shape != SCREEN_SHAPE:
        raise ValueError(f"expected a {SCREEN_SHAPE} screen, got shape {screen.shape}")
    top, bottom, left, right = spec.crop
    field = np.ascontiguousarray(screen[top:bottom, left:right], dtype=np.uint8)
    small = Image.fromarray(field).resize((spec.size, spec.size), Image.Resampling.BOX)
    return (np.asarray(small) >= spec.threshold).astype(np.uint8)


def _play_episode(spec: AtariSpec, episode: int) -> np.ndarray:
    """Play one episode; its kept, preprocessed frames, shape ``(n, size, size)``."""
    ale_py = _ale_py()
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner per ROM load
    seed = spec.episode_seed(episode)
    ale = ale_py.ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.setInt("frame_skip", 1)
    ale.loadROM(ale_py.roms.get_rom_path(spec.game))
    actions = ale.getMinimalActionSet()
    rng = np.random.default_rng(seed)
    ale.reset_game()

    k = spec.keep_every
    prev = ale.getScreenGrayscale()  # the screen before the next kept frame
    cur = np.empty(SCREEN_SHAPE, dtype=np.uint8)
    frames = []
    t = 0
    while t < spec.max_frames and not ale.game_over():
        action = actions[int(rng.integers(len(actions)))]
        for _ in range(spec.action_repeat):
            ale.act(action)
            t += 1
            if t % k == 0:
                ale.getScreenGrayscale(cur)
                frames.append(preprocess(np.maximum(prev, cur), spec))
            if (t + 1) % k == 0:
                ale.getScreenGrayscale(prev)
            if t >= spec.max_frames or ale.game_over():
                break
    if not frames:
        return np.zeros((0, spec.size, spec.size), dtype=np.uint8)
    return np.stack(frames)


def generate(spec: str | AtariSpec, progress: bool = True) -> dict[str, np.ndarray]:
    """Play the spec's episodes and return its splits. Deterministic given the spec.

    Args:
        spec: an :class:`AtariSpec` or the name of a registered one.
        progress: show a progress bar over episodes.

    Returns:
        ``{split: uint8 (N, 1, size, size) of 0/1}``, ``{split}_episode: int64 (N,)``
        (each frame's episode index) and ``{split}_frame: int64 (N,)`` (each frame's
        emulator frame number within its episode), for split in train, valid, test.

    Raises:
        ImportError: ale-py is not installed.
    """
    spec = _spec(spec)
    _ale_py()
    from tqdm import tqdm

    per_episode = {}
    for e in tqdm(range(spec.n_episodes), desc=spec.name, disable=not progress, mininterval=2):
        per_episode[e] = _play_episode(spec, e)
    out: dict[str, np.ndarray] = {}
    empty = np.zeros((0, spec.size, spec.size), dtype=np.uint8)
    for split, eps in spec.split_episodes().items():
        frames = [per_episode[int(e)] for e in eps]
        x = np.concatenate(frames) if frames else empty
        out[split] = x.reshape(-1, 1, spec.size, spec.size)
        out[f"{split}_episode"] = np.concatenate([np.full(len(f), e, dtype=np.int64) for e, f in zip(eps, frames)])
        out[f"{split}_frame"] = np.concatenate(
            [spec.keep_every * np.arange(1, len(f) + 1, dtype=np.int64) for f in frames]
        )
    return out


# --------------------------------------------------------------------------- cache


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache of generated datasets: ``path`` if given, else ``$DENSITYBENCH_CACHE``,
    else ``<repo>/data/generated``."""
    if path is not None:
        return Path(path).expanduser().resolve()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return paths.REPO_ROOT / "data" / "generated"


_resolve_cache_dir = cache_dir  # load_atari's argument shadows the name


def cache_path(spec: str | AtariSpec, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the dataset ``spec`` is cached: ``<cache_dir>/<name>.npz``."""
    return _resolve_cache_dir(cache_dir) / f"{_spec(spec).name}.npz"


def _checksum(a: np.ndarray) -> str:
    """SHA-256 of a frame array (:func:`densitybench.datasets.core.array_sha256`) or of an index
    array's little-endian ``int64`` bytes."""
    if a.dtype == np.uint8:
        return array_sha256(a)
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<i8").tobytes()).hexdigest()


def _array_keys() -> list[str]:
    return [f"{s}{suffix}" for s in SPLITS for suffix in ("", "_episode", "_frame")]


def _save(path: Path, spec: AtariSpec, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache file atomically (a temporary file in the same folder, then a rename)."""
    meta = {
        "format": FORMAT_VERSION,
        "params": spec.params(),
        "ale_py_version": _ale_version(),
        "sha256": {k: _checksum(arrays[k]) for k in _array_keys()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            meta_json = np.array(json.dumps(meta, sort_keys=True))
            np.savez_compressed(f, meta=meta_json, **{k: arrays[k] for k in _array_keys()})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read(path: Path, spec: AtariSpec) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a cache file against ``spec``; its arrays and metadata."""
    remedy = (
        f"It was not used and not changed; delete it (rm {path}) and load again to "
        f"regenerate it, or use another cache directory."
    )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
        if not isinstance(meta, dict):
            raise ValueError("its metadata is not a JSON object")
    except Exception as e:  # a truncated zip, a foreign file, no metadata, ...
        raise AtariCacheError(
            f"{spec.name}: cached file {path} cannot be read ({type(e).__name__}: {e}). {remedy}"
        ) from None
    stored = meta.get("params")
    if stored != spec.params():
        want = spec.params()
        keys = sorted(set(want) | set(stored or {}))
        diff = "\n".join(
            f"  {k}: file has {(stored or {}).get(k)!r}, spec has {want.get(k)!r}"
            for k in keys
            if (stored or {}).get(k) != want.get(k)
        )
        raise AtariCacheError(
            f"{spec.name}: cached file {path} was generated with other parameters than "
            f"the spec:\n{diff}\n{remedy}"
        )
    sums = meta.get("sha256", {})
    for k in _array_keys():
        if k not in arrays:
            raise AtariCacheError(f"{spec.name}: cached file {path} has no array {k!r}. {remedy}")
        got = _checksum(arrays[k])
        if got != sums.get(k):
            raise AtariCacheError(
                f"{spec.name}: content checksum mismatch for {path} (array {k!r})\n"
                f"  stored SHA-256: {sums.get(k)}\n"
                f"  actual:         {got}\n"
                f"The file is corrupt or was altered. {remedy}"
            )
    return arrays, meta


def _arrays(spec: str | AtariSpec, cache_dir, progress: bool) -> tuple[dict[str, np.ndarray], dict, Path]:
    spec = _spec(spec)
    path = cache_path(spec, cache_dir)
    if not path.exists():
        _save(path, spec, generate(spec, progress=progress))
    arrays, meta = _read(path, spec)
    return arrays, meta, path


def _description(spec: AtariSpec, arrays: dict[str, np.ndarray], meta: dict) -> str:
    top, bottom, left, right = spec.crop
    n_eps = {s: len(np.unique(arrays[f"{s}_episode"])) for s in SPLITS}
    sizes = " / ".join(f"{len(arrays[s]):,} {s}" for s in SPLITS)
    return (
        f"Binarized {spec.game.replace('_', ' ').title()} frames, {spec.size}x{spec.size}, "
        f"generated offline with the Arcade Learning Environment (ale-py "
        f"{meta.get('ale_py_version', 'unknown')}, ROM shipped with ale-py). "
        f"{spec.n_episodes} episodes of a uniformly random policy over the game's minimal "
        f"action set, each action held {spec.action_repeat} frames, sticky actions off "
        f"(repeat_action_probability 0); episode e seeded with {spec.seed} * "
        f"{EPISODE_SEED_STRIDE} + e (policy and ALE random_seed). An episode ends at game "
        f"over or after {spec.max_frames} frames; one frame in {spec.keep_every} is kept, "
        f"as the pixel-wise max of it and the frame before. Preprocessing: ALE grey screen "
        f"(210x160) cropped to rows {top}:{bottom}, columns {left}:{right}, resized to "
        f"{spec.size}x{spec.size} with Pillow BOX (area average; aspect ratio not "
        f"preserved), binarized as level >= {spec.threshold} of 0..255. {spec.note} "
        f"Split by episode with a permutation from seed {spec.seed} (fractions "
        f"{'/'.join(f'{f:g}' for f in spec.fractions)}): {n_eps['train']} / "
        f"{n_eps['valid']} / {n_eps['test']} episodes, {sizes} frames."
    )


def load_atari(name: str | AtariSpec, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> ImageData:
    """Load a generated Atari dataset, generating and caching it on first use.

    Args:
        name: a key of :data:`ATARI`, or an :class:`AtariSpec`.
        cache_dir: the cache folder (see :func:`cache_dir`).
        progress: show a progress bar if the dataset has to be generated.

    Returns:
        An :class:`~densitybench.datasets.core.ImageData` of kind ``"binary"``, ``n_levels`` 2,
        splits ``uint8 (N, 1, size, size)``, no labels. Each frame's episode index is
        given by :func:`episodes`.

    Raises:
        AtariCacheError: the cached file was made with other parameters, or its content
            does not match its checksums; it is left as it is and the message says to
            delete it.
        ImportError: the dataset is not cached and ale-py is not installed.
    """
    spec = _spec(name)
    arrays, meta, path = _arrays(spec, cache_dir, progress)
    return ImageData(
        name=spec.name,
        kind="binary",
        n_levels=2,
        image_shape=(1, spec.size, spec.size),
        train=torch.from_numpy(np.ascontiguousarray(arrays["train"])),
        valid=torch.from_numpy(np.ascontiguousarray(arrays["valid"])),
        test=torch.from_numpy(np.ascontiguousarray(arrays["test"])),
        description=_description(spec, arrays, meta),
        files={path.name: str(path)},
        labels=None,
    )


def episodes(name: str | AtariSpec, cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The episode index of every frame of each split, ``{split: int64 (N,)}``, aligned
    with the splits of :func:`load_atari` (generates and caches the dataset if needed)."""
    arrays, _, _ = _arrays(name, cache_dir, progress=True)
    return {s: arrays[f"{s}_episode"] for s in SPLITS}


class AtariSource(Source):
    """The Atari datasets of :data:`ATARI`: generated with the emulator on first use and cached.

    They are not in the data directory: :func:`cache_dir` says where they are, so the
    ``data_dir`` arguments are not used.
    """

    title = "Atari frames generated with the Arcade Learning Environment"

    def names(self) -> list[str]:
        return list(ATARI)

    def load(self, name: str, data_dir: str | os.PathLike | None = None) -> ImageData:
        return load_atari(name)

    def fetch(self, name: str, data_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
        """Nothing to download: generate the dataset with the emulator and cache it."""
        load_atari(name, progress=progress)
        return cache_path(name)

    def description(self, name: str) -> str:
        spec = _spec(name)
        return (
            f"Binarized {spec.game.replace('_', ' ').title()} frames, {spec.size}x{spec.size}, "
            f"generated offline with the Arcade Learning Environment: {spec.n_episodes} episodes of a "
            f"uniformly random policy, binarized as level >= {spec.threshold} of 0..255, split by episode. "
            f"{spec.note}"
        )

    def missing(self, name: str, data_dir: str | os.PathLike | None = None) -> str | None:
        return None  # generated on first use

    def check(self, name: str, data_dir: str | os.PathLike | None = None) -> str:
        if not cache_path(name).is_file():
            return "not generated yet (made and cached on first use)"
        return super().check(name, data_dir)


SOURCE = register(AtariSource())
