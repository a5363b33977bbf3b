"""Real images for the scoring batch: the original NASWOT protocol scores a network on a batch of
training images (``--data PATH``; ``data=`` of ``prepare``, ``compute_proxies``,
``score_architecture`` and ``vf.score``). Without it every proxy sees Gaussian noise.

Formats (the path decides):

* CIFAR-10/100 python format (www.cs.toronto.edu/~kriz/cifar.html): one pickled batch file
  (CIFAR-10's ``data_batch_1``..``5`` or ``test_batch``, CIFAR-100's ``train`` or ``test``) holding
  ``b"data"``, (N, 3072) uint8 rows of 1024 red, 1024 green and 1024 blue values of a 32x32 image,
  and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100, its 100 classes); or the directory of
  the extracted archive, whose training images are used: ``cifar-10-batches-py`` (``data_batch_1``
  to ``data_batch_5``) or ``cifar-100-python`` (``train``). A pickle can run code when it is read:
  point only at files you trust.
* ``.npz``: ``images`` (N, H, W, C) or (N, C, H, W) with C = 1 or 3 (the axis of size 1 or 3 is the
  channel axis; an image whose last side is 1 or 3 too is ambiguous and refused), uint8 or float,
  and ``labels``, N non-negative integers.

Normalisation, per channel: x' = (x - mean) / std, with x in [0, 1] for uint8 images (x / 255, as
torchvision's ``ToTensor``) and as stored for float ones. mean and std: CIFAR-10's and CIFAR-100's
as NAS-Bench-201 and NASWOT use them (``CIFAR_NORMALISATION``), the per-channel mean and population
standard deviation of all the file's images for ``.npz``, or the ones given (``DataSource``). No
resizing, cropping or flipping: images of another size than the network's input are refused.

Every proxy reading the context's batch then sees real images (``naswot_128`` the first 128 of the
same shuffle), and those needing labels (GradNorm, SNIP, GraSP, plain, Fisher, EPE-NAS, ZiCo) the
real labels instead of random ones. Zen-NAS is defined on Gaussian inputs and keeps them; SWAP
reads its patterns from Zen's shared forward, so it stays on Gaussian noise too.

The batch of B images for a seed: perm = ``numpy.random.default_rng(seed).permutation(N)``, the
images and labels perm[:B]; a larger batch of the same seed begins with a smaller one. A process
reads a file once (``load`` keeps the last few, keyed by path, size and modification time), so a
worker scoring many architectures pays for it once.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (mean, std) per RGB channel, in [0, 1]: NAS-Bench-201's (and NASWOT's) CIFAR normalisation.
CIFAR_NORMALISATION = {
    "cifar10": ([x / 255 for x in (125.3, 123.0, 113.9)], [x / 255 for x in (63.0, 62.1, 66.7)]),
    "cifar100": ([x / 255 for x in (129.3, 124.1, 112.4)], [x / 255 for x in (68.2, 65.4, 70.4)]),
}
# The training files of an extracted CIFAR archive.
CIFAR_DIRECTORIES = {"cifar10": [f"data_batch_{i}" for i in range(1, 6)], "cifar100": ["train"]}
CIFAR_LABELS = {"cifar10": "labels", "cifar100": "fine_labels"}
CIFAR_SIDE = 32
DATA_HELP = ("real images to score on instead of Gaussian noise (the original NASWOT protocol): a CIFAR-10/100 "
             "python-format batch file or extracted directory, or an .npz of images and labels; the first B "
             "images after a shuffle seeded by the init seed, normalised; their labels feed the proxies that "
             "need labels. Part of the stored run: resuming with another --data is refused")


class DataError(ValueError):
    """A data file that cannot serve as the scoring batch; the message names the file."""


@dataclass(frozen=True)
class DataSource:
    """Where the scoring batch comes from: plain data, so a job sent to a worker process carries it.

    path: a CIFAR batch file, a CIFAR directory or an ``.npz`` (see the module docstring).
    mean, std: per-channel normalisation in the [0, 1] scale of uint8 images; None: the dataset's
        standard one (CIFAR) or the file's own statistics (``.npz``).
    """

    path: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "path", os.path.abspath(os.path.expanduser(str(self.path))))
        if (self.mean is None) != (self.std is None):
            raise DataError(f"{self.path}: give both mean and std, or neither")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if self.std is not None and (len(self.std) != len(self.mean) or not all(s > 0 for s in self.std)):
            raise DataError(f"{self.path}: mean and std need one value per channel, std positive; got "
                            f"mean {self.mean}, std {self.std}")


def as_source(data: DataSource | str | os.PathLike) -> DataSource:
    return data if isinstance(data, DataSource) else DataSource(str(data))


@dataclass(frozen=True, eq=False)
class Dataset:
    """The images of a ``DataSource`` and how they are normalised.

    images: (N, C, H, W) as stored (uint8 or float32); labels: (N,) int64.
    scale: 1/255 for uint8 images, else 1; mean, std: (C,) float64, applied after ``scale``.
    kind: ``cifar10``, ``cifar100`` or ``npz``.
    """

    source: DataSource
    images: np.ndarray
    labels: np.ndarray
    scale: float
    mean: np.ndarray
    std: np.ndarray
    kind: str

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def check(self, *, input_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
              batch_size: int | None = None, what: str = "the network") -> None:
        """An error naming the file where its images do not fit ``input_shape``, its labels not
        ``num_classes`` classes, or it has fewer than ``batch_size`` images."""
        if input_shape is not None and tuple(input_shape) != self.sample_shape:
            raise DataError(f"{self.source.path}: its images are {_shape(self.sample_shape)} (C x H x W); "
                            f"{what} takes {_shape(input_shape)} inputs (images are not resized)")
        if num_classes is not None and int(self.labels.max()) >= num_classes:
            raise DataError(f"{self.source.path}: it has labels up to {int(self.labels.max())}; {what} has "
                            f"{num_classes} classes (labels 0..{num_classes - 1})")
        if batch_size is not None and batch_size > len(self.images):
            raise DataError(f"{self.source.path}: a batch of {batch_size} images is needed, it holds "
                            f"{len(self.images)}")

    def batch(self, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``batch_size`` images (normalised, float32) and labels after the seeded shuffle."""
        self.check(batch_size=batch_size)
        chosen = np.random.default_rng(seed).permutation(len(self.images))[:batch_size]
        images = self.images[chosen].astype(np.float64) * self.scale
        images = (images - self.mean[:, None, None]) / self.std[:, None, None]
        return images.astype(np.float32), self.labels[chosen]


def _shape(shape) -> str:
    return "x".join(str(s) for s in shape)


_CACHE: dict[tuple, Dataset] = {}
_CACHE_SIZE = 2  # a CIFAR training set is 150 MB of uint8


def load(data: DataSource | str | os.PathLike) -> Dataset:
    """The dataset of ``data`` (a ``DataSource`` or a path), read once per process."""
    source = as_source(data)
    files = _files(source.path)
    key = (source, tuple((f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files))
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _read(source, files)
    return _CACHE[key]


def _files(path: str) -> list[str]:
    """The files a path stands for: itself, or a CIFAR directory's training files."""
    if os.path.isdir(path):
        for kind, names in CIFAR_DIRECTORIES.items():
            if os.path.exists(os.path.join(path, names[0])):
                missing = [n for n in names if not os.path.isfile(os.path.join(path, n))]
                if missing:
                    raise DataError(f"{path}: a {kind} directory without {', '.join(missing)}")
                return [os.path.join(path, n) for n in names]
        raise DataError(f"{path}: a directory, but not an extracted CIFAR archive (no data_batch_1 of "
                        "cifar-10-batches-py, no train of cifar-100-python)")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such data file")
    return [path]


def _read(source: DataSource, files: list[str]) -> Dataset:
    if source.path.endswith(".npz"):
        images, labels, kind = *_read_npz(source.path), "npz"
    else:
        parts = [_read_cifar(f) for f in files]
        kinds = {kind for _, _, kind in parts}
        if len(kinds) > 1:
            raise DataError(f"{source.path}: its files mix CIFAR-10 and CIFAR-100 batches")
        kind = kinds.pop()
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
    scale = 1 / 255 if images.dtype == np.uint8 else 1.0
    if source.mean is not None:
        mean, std = np.array(source.mean), np.array(source.std)
    elif kind in CIFAR_NORMALISATION:
        mean, std = (np.array(v) for v in CIFAR_NORMALISATION[kind])
    else:
        mean, std = _statistics(images, scale)
        if not (std > 0).all():
            raise DataError(f"{source.path}: channel {int(np.argmin(std))} is constant across the file, so its "
                            "standard deviation cannot normalise it; give mean and std (DataSource)")
    if len(mean) != images.shape[1]:
        raise DataError(f"{source.path}: its images have {images.shape[1]} channels, the normalisation "
                        f"{len(mean)}")
    return Dataset(source, images, labels, scale, mean, std, kind)


def _statistics(images: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std (after ``scale``), accumulated in float64 one image
    block at a time so that a large uint8 file is not copied to float64 whole."""
    channels = images.shape[1]
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(images), 4096):
        block = images[start:start + 4096].astype(np.float64) * scale
        total += block.sum(axis=(0, 2, 3))
        squares += (block ** 2).sum(axis=(0, 2, 3))
        count += block.shape[0] * block.shape[2] * block.shape[3]
    mean = total / count
    return mean, np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))


def _read_cifar(path: str) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
    except Exception as exc:  # whatever a damaged or foreign file raises while unpickling
        raise DataError(f"{path}: not a readable CIFAR python-format batch (pickle: {type(exc).__name__}: "
                        f"{exc}); give a CIFAR batch file or directory, or an .npz") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: holds a pickled {type(batch).__name__}, not a CIFAR batch (a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    kind = next((k for k, key in CIFAR_LABELS.items() if key in batch), None)
    if "data" not in batch or kind is None:
        raise DataError(f"{path}: a CIFAR batch needs the keys data and labels (CIFAR-10) or fine_labels "
                        f"(CIFAR-100); it has {sorted(map(str, batch))}")
    data = np.asarray(batch["data"])
    side = CIFAR_SIDE
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * side * side:
        raise DataError(f"{path}: data must be (N, {3 * side * side}) uint8 (32x32 RGB rows), "
                        f"it is {data.shape} {data.dtype}")
    images = data.reshape(-1, 3, side, side)
    return images, _labels(path, batch[CIFAR_LABELS[kind]], len(images), CIFAR_LABELS[kind]), kind


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {k: archive[k] for k in archive.files}
    except Exception as exc:  # a damaged zip, an object array, ...
        raise DataError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("images", "labels") if k not in contents]
    if missing:
        raise DataError(f"{path}: an .npz needs the arrays images and labels; missing {', '.join(missing)} "
                        f"(it has {sorted(contents)})")
    images = contents["images"]
    if images.ndim != 4:
        raise DataError(f"{path}: images must be (N, H, W, C) or (N, C, H, W), they are {images.shape}")
    first, last = images.shape[1] in (1, 3), images.shape[3] in (1, 3)
    if first == last:
        raise DataError(f"{path}: images {images.shape}: cannot tell the channel axis (the one of size 1 or 3, "
                        "second or last)")
    if last:
        images = images.transpose(0, 3, 1, 2)
    if images.dtype == np.uint8:
        images = np.ascontiguousarray(images)
    elif np.issubdtype(images.dtype, np.floating):
        images = np.ascontiguousarray(images, dtype=np.float32)
        if not np.isfinite(images).all():
            raise DataError(f"{path}: images hold NaN or infinite values")
    else:
        raise DataError(f"{path}: images must be uint8 or float, they are {images.dtype}")
    return images, _labels(path, contents["labels"], len(images), "labels")


def _labels(path: str, values, count: int, name: str) -> np.ndarray:
    labels = np.asarray(values)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: {name} must be {count} integers (one per image), they are "
                        f"{labels.shape} {labels.dtype}")
    if count == 0:
        raise DataError(f"{path}: holds no images")
    if labels.min() < 0:
        raise DataError(f"{path}: {name} must be non-negative, the smallest is {int(labels.min())}")
    return labels.astype(np.int64)


__all__ = ["DataSource", "Dataset", "DataError", "load", "as_source", "CIFAR_NORMALISATION"]
