"""MNIST and Fashion-MNIST from the standard IDX files, validated, with one lookup order.

Lookup order for a dataset (first hit wins):

1. the data directory given by ``--data-dir`` or ``FITBENCH_DATA_DIR``;
2. the Keras cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``;
3. Debian's ``/usr/share/datasets/<name>`` (package ``dataset-fashion-mnist``);
4. Keras' own download, when the machine is online and downloads are allowed.

In a directory, a dataset is the four IDX files in a sub-directory named after the dataset
(``fashion-mnist/``, ``mnist/``): the layout of Keras' cache, of Debian's package and of
``../shared/datasets``. Each file may be gzip-compressed (``train-images-idx3-ubyte.gz``,
as distributed) or not (``train-images-idx3-ubyte``, or ``train-images.idx3-ubyte`` as
some mirrors and tools ship them). The Keras cache may also hold MNIST as
``mnist.npz``, which Keras itself writes.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR_ENV = "FITBENCH_DATA_DIR"
DEBIAN_DATASETS = Path("/usr/share/datasets")

# The directory names the original distributions and Keras' cache use.
DIRECTORY_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
# IDX type byte -> numpy dtype (big-endian, as the format stores them).
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
HOW_TO_PROVIDE = (
    "Point fitbench at a directory holding the IDX .gz files with --data-dir DIR or "
    f"{DATA_DIR_ENV}=DIR (for example ../shared/datasets), put them in the Keras cache "
    "(~/.keras/datasets/fashion-mnist/), install Debian's dataset-fashion-mnist, "
    "or run once online so Keras can download them."
)


class DatasetError(Exception):
    """Base class of the errors this module raises."""


class DatasetNotFound(DatasetError):
    """No location in the lookup order holds the dataset."""


class CorruptDataset(DatasetError):
    """A dataset file exists but its content is not a valid IDX file of the expected shape."""

    def __str__(self) -> str:  # the problem, then the fix
        return (f"{super().__str__()}; replace it with an intact copy of the standard IDX file "
                "(README: Data), or delete it to fall back to the next location")


class UnreadableDataset(DatasetError):
    """A dataset file exists but cannot be read (permissions)."""


@dataclass(frozen=True)
class Dataset:
    """The raw arrays of an image-classification dataset, as stored (uint8)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"source={self.source!r})"
        )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file (gzip-compressed when its name ends in .gz) and validate it.

    Raises CorruptDataset naming the file and what is wrong: bad gzip stream, bad magic
    number, unknown element type, or a byte count that disagrees with the header.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                raw = stream.read()
        else:
            raw = path.read_bytes()
    except PermissionError as error:
        raise UnreadableDataset(f"{path}: permission denied; make it readable (chmod a+r) or point "
                                "--data-dir at a copy you can read") from error
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptDataset(f"{path}: cannot decompress ({error}); the file is damaged or truncated") from error

    if len(raw) < 4:
        raise CorruptDataset(f"{path}: {len(raw)} bytes, too short for an IDX header")
    zero, type_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise CorruptDataset(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} "
            "(expected 0x0000 then a type byte such as 0x08 and the number of dimensions)"
        )
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise CorruptDataset(f"{path}: header announces {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = struct.unpack(f">{ndim}I", raw[4:header_bytes])
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_bytes
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing bytes"
        raise CorruptDataset(
            f"{path}: {problem}: header says shape {shape} ({expected} data bytes) "
            f"but the file holds {actual} data bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header_bytes).reshape(shape)


def validate(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
             y_test: np.ndarray, where: str) -> None:
    """Check shapes, dtypes, label range, and that image and label counts agree."""
    for part, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise CorruptDataset(f"{where}: {name} {part} images have shape {images.shape}, expected (N, 28, 28)")
        if labels.ndim != 1:
            raise CorruptDataset(f"{where}: {name} {part} labels have shape {labels.shape}, expected (N,)")
        if len(images) != len(labels):
            raise CorruptDataset(
                f"{where}: {name} has {len(images)} {part} images but {len(labels)} {part} labels"
            )
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise CorruptDataset(f"{where}: {name} {part} arrays are {images.dtype}/{labels.dtype}, expected uint8")
        if len(labels) and labels.max() >= NUM_CLASSES:
            raise CorruptDataset(
                f"{where}: {name} {part} labels go up to {labels.max()}, expected 0..{NUM_CLASSES - 1}"
            )


def idx_path(directory: Path, filename: str) -> Path:
    """`filename` (.gz) in `directory`, or its uncompressed form (either spelling), whichever exists
    (the .gz name when none does, so that the error names the distributed file)."""
    plain = filename.removesuffix(".gz")
    for candidate in (filename, plain, plain.replace("-idx", ".idx", 1)):
        if (directory / candidate).is_file():
            return directory / candidate
    return directory / filename


def read_idx_directory(name: str, directory: Path) -> Dataset:
    arrays = {key: read_idx(idx_path(directory, filename)) for key, filename in IDX_FILES.items()}
    validate(name, where=str(directory), **arrays)
    return Dataset(name, source=str(directory), **arrays)


def read_keras_npz(name: str, path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in IDX_FILES}
    except (OSError, ValueError, KeyError, zlib.error) as error:
        raise CorruptDataset(f"{path}: not a readable Keras {name} archive ({error})") from error
    validate(name, where=str(path), **arrays)
    return Dataset(name, source=str(path), **arrays)


def candidate_locations(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where `name` is looked for, in order (existing or not). The download comes after these."""
    if name not in DIRECTORY_NAMES:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DIRECTORY_NAMES)}")
    directory_name = DIRECTORY_NAMES[name]
    roots: list[Path] = []
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if explicit:
        roots.append(Path(explicit).expanduser())
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    roots.append(keras_home / "datasets")
    locations = []
    for root in roots:
        locations.append(root / directory_name)
        if name == "mnist":
            locations.append(root / "mnist.npz")
    locations.append(DEBIAN_DATASETS / directory_name)
    return locations


def _holds_dataset(location: Path) -> bool:
    if location.suffix == ".npz":
        return location.is_file()
    # Any one of the four files present means this location is meant to hold the dataset:
    # a missing sibling is then reported as an error rather than silently skipped.
    return any(idx_path(location, filename).is_file() for filename in IDX_FILES.values())


def find(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first location in the lookup order that holds `name`, or None."""
    return next((loc for loc in candidate_locations(name, data_dir) if _holds_dataset(loc)), None)


def load(name: str, data_dir: str | os.PathLike | None = None, allow_download: bool = True) -> Dataset:
    """Load `name` ('mnist' or 'fashion_mnist') from the first location that holds it.

    Raises DatasetNotFound (saying how to provide the data) when nothing holds it and the
    download is disallowed or fails, CorruptDataset when a file found is invalid, and
    UnreadableDataset when it cannot be read.
    """
    location = find(name, data_dir)
    if location is not None:
        if location.suffix == ".npz":
            return read_keras_npz(name, location)
        missing = [f for f in IDX_FILES.values() if not idx_path(location, f).is_file()]
        if missing:
            raise CorruptDataset(f"{location}: holds part of {name} but lacks {', '.join(missing)}")
        return read_idx_directory(name, location)
    searched = ", ".join(str(loc) for loc in candidate_locations(name, data_dir))
    if not allow_download:
        raise DatasetNotFound(f"{name} not found (searched {searched}; download disabled). {HOW_TO_PROVIDE}")
    try:
        (x_train, y_train), (x_test, y_test) = _keras_download(name)
    except Exception as error:  # Keras raises a bare Exception when the fetch fails
        raise DatasetNotFound(
            f"{name} not found (searched {searched}) and Keras could not download it ({error}). {HOW_TO_PROVIDE}"
        ) from error
    validate(name, x_train, y_train, x_test, y_test, where="keras download")
    return Dataset(name, x_train, y_train, x_test, y_test, source="keras download")


def _keras_download(name: str):
    import keras  # imported here: the loader needs Keras only for the download

    return getattr(keras.datasets, name).load_data()


@dataclass(frozen=True)
class Splits:
    """Train, validation and test arrays ready for a model: float32 in [0, 1], int32 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


def split(
    dataset: Dataset,
    validation: int | float | str,
    validation_at: str = "start",
    input_shape: tuple[int, ...] = IMAGE_SHAPE,
    train_samples: int | None = None,
    validation_samples: int | None = None,
    test_samples: int | None = None,
    pixel_scale: float = 1 / 255,
) -> Splits:
    """Hold out a validation set from the training images, scale pixels, reshape (float32).

    `validation` is a count or a fraction of the training images, or ``"test"`` to validate
    on the test set (as the CNN guide does); `validation_at` says whether held-out images
    are the first ones (``start``, as the batch-size notebook slices them) or the last ones
    (``end``, as Keras' ``validation_split`` takes them). The optional ``*_samples`` keep
    only the first N of each part (a bounded schedule, or the TPU-friendly trims of the CNN
    guide). Pixels are multiplied by `pixel_scale` (1/255 gives [0, 1]).
    """
    total = len(dataset.y_train)
    if validation == "test":
        validation = 0
    elif isinstance(validation, str):
        raise ValueError(f"validation={validation!r}: give a count, a fraction, or 'test'")
    held_out = int(round(validation * total)) if isinstance(validation, float) else int(validation)
    if not 0 <= held_out < total:
        raise ValueError(f"validation={validation!r} leaves no training images out of {total}")
    if validation_at == "start":
        val, train = slice(0, held_out), slice(held_out, total)
    elif validation_at == "end":
        train, val = slice(0, total - held_out), slice(total - held_out, total)
    else:
        raise ValueError(f"validation_at must be 'start' or 'end', not {validation_at!r}")

    def prepare(images: np.ndarray, labels: np.ndarray, keep: int | None):
        images, labels = images[:keep], labels[:keep]
        pixels = (images.astype(np.float32) * np.float32(pixel_scale)).reshape((len(images), *input_shape))
        return pixels, labels.astype(np.int32)

    x_train, y_train = prepare(dataset.x_train[train], dataset.y_train[train], train_samples)
    x_test, y_test = prepare(dataset.x_test, dataset.y_test, test_samples)
    if held_out == 0:  # validate on the test set (the same arrays, not a copy)
        return Splits(x_train, y_train, x_test, y_test, x_test, y_test)
    x_val, y_val = prepare(dataset.x_train[val], dataset.y_train[val], validation_samples)
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test)
