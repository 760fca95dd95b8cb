"""The one dataset loader: a registered dataset by name, or a user's function.

A workload's dataset is either

* a registered name, ``mnist`` or ``fashion_mnist``: the standard IDX files, validated, found
  in the lookup order below; or
* a function (with the workload's ``dataset_args``) that returns the data as a mapping with
  ``train`` and ``test`` and, optionally, ``validation``: each an ``(x, y)`` pair of NumPy
  arrays, or a finite ``tf.data.Dataset`` of unbatched ``(x, y)`` elements (read into arrays
  once). Shapes, classes and sample counts come from the data. Its record names the function,
  its arguments and a fingerprint of the content (shapes, dtypes, a hash of the first rows),
  so that two different datasets never compare as alike.

Lookup order for a dataset (first hit wins):

1. the data directory given by ``--data-dir`` or ``FITBENCH_DATA_DIR``;
2. the Keras cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``;
3. Debian's ``/usr/share/datasets/<name>`` (package ``dataset-fashion-mnist``);
4. Keras' own download, when the machine is online and downloads are allowed.

In a directory, a dataset is the four IDX files in a sub-directory named after the dataset
(``fashion-mnist/``, ``mnist/``): the layout of Keras' cache and of Debian's package. Each
file may be gzip-compressed (``train-images-idx3-ubyte.gz``, as distributed) or not
(``train-images-idx3-ubyte``, or ``train-images.idx3-ubyte`` as some mirrors and tools ship
them). The Keras cache may also hold MNIST as
``mnist.npz``, which Keras itself writes.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import os
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
IMAGE_SHAPE = (28, 28)  # the registered datasets' images
NUM_CLASSES = 10
HOW_TO_PROVIDE = (
    "Point fitbench at a directory holding the IDX .gz files with --data-dir DIR or "
    f"{DATA_DIR_ENV}=DIR (DIR/fashion-mnist/, DIR/mnist/), put them in the Keras cache "
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
    """A dataset's arrays as loaded: a registered one's uint8 images (scaled by the workload's
    pixel_scale), or what a user's function returned."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    x_val: np.ndarray | None = None  # a function's own validation split
    y_val: np.ndarray | None = None
    images: bool = True  # registered IDX images: uint8 pixels, scaled and reshaped by split()
    # What identifies it in a record: the registered name, or {function, args, fingerprint}.
    identity: str | Mapping[str, Any] = ""
    classes: int | None = field(default=None)  # integer labels: how many classes (from the data)

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
    return Dataset(name, source=str(directory), identity=name, classes=NUM_CLASSES, **arrays)


def read_keras_npz(name: str, path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in IDX_FILES}
    except (OSError, ValueError, KeyError, zlib.error) as error:
        raise CorruptDataset(f"{path}: not a readable Keras {name} archive ({error})") from error
    validate(name, where=str(path), **arrays)
    return Dataset(name, source=str(path), identity=name, classes=NUM_CLASSES, **arrays)


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


def load(source: str | Callable[..., Any], data_dir: str | os.PathLike | None = None, allow_download: bool = True,
         args: Mapping[str, Any] | None = None) -> Dataset:
    """A workload's dataset: a user's function's data (`from_function`), or a registered one."""
    if callable(source):
        return from_function(source, args or {})
    if args:
        raise ValueError(f"dataset {source!r} is a registered dataset: it takes no dataset_args")
    return load_registered(source, data_dir, allow_download)


def load_registered(name: str, data_dir: str | os.PathLike | None = None, allow_download: bool = True) -> Dataset:
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
    return Dataset(name, x_train, y_train, x_test, y_test, source="keras download", identity=name, classes=NUM_CLASSES)


def _keras_download(name: str):
    import keras  # imported here: the loader needs Keras only for the download

    return getattr(keras.datasets, name).load_data()


def source_key(source: str | Callable[..., Any], args: Mapping[str, Any] | None = None) -> str:
    """One string per distinct dataset request (a session caches each dataset once)."""
    return describe_source(source) + json.dumps(_plain(args or {}), sort_keys=True, default=repr)


def describe_source(source: str | Callable[..., Any]) -> str:
    """'fashion_mnist', or the function's qualified name 'module.function'."""
    if isinstance(source, str):
        return source
    return f"{getattr(source, '__module__', '?')}.{getattr(source, '__qualname__', repr(source))}"


def from_function(function: Callable[..., Any], args: Mapping[str, Any]) -> Dataset:
    """Call a user's dataset function and check what it returned; DatasetError names the problem
    and the shape it should have."""
    name = describe_source(function)
    expected = ("return {'train': (x, y), 'validation': (x, y), 'test': (x, y)} of NumPy arrays "
                "(or unbatched tf.data.Datasets of (x, y)); 'validation' is optional")
    try:
        returned = function(**args)
    except TypeError as error:
        signature = inspect.signature(function) if callable(function) else "?"
        raise DatasetError(f"dataset function {name}{signature} cannot be called with dataset_args "
                           f"{dict(args)!r}: {error}") from error
    if not isinstance(returned, Mapping) or not {"train", "test"} <= set(returned) \
            or set(returned) - {"train", "validation", "test"}:
        got = sorted(returned) if isinstance(returned, Mapping) else type(returned).__name__
        raise DatasetError(f"dataset function {name} returned {got}; it must {expected}")
    parts = {part: _arrays(name, part, value, expected) for part, value in returned.items()}
    x_val, y_val = parts.get("validation", (None, None))
    for part, (x, y) in parts.items():
        if len(x) != len(y) or len(x) == 0:
            raise DatasetError(f"dataset function {name}: {part} has {len(x)} inputs and {len(y)} targets; "
                               "give as many of each, at least one")
        if x.shape[1:] != parts["train"][0].shape[1:]:
            raise DatasetError(f"dataset function {name}: {part} inputs have shape {x.shape[1:]} per sample, "
                               f"train inputs {parts['train'][0].shape[1:]}")
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    classes = None
    if np.issubdtype(y_train.dtype, np.integer) and y_train.ndim == 1:
        classes = int(max(int(y.max()) for _, y in parts.values())) + 1
    identity = {"function": name, "args": _plain(dict(args)), "fingerprint": fingerprint(parts)}
    return Dataset(name, x_train, y_train, x_test, y_test, source=f"function {name}", x_val=x_val, y_val=y_val,
                   images=False, identity=identity, classes=classes)


def _arrays(name: str, part: str, value: Any, expected: str) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf  # only for a function that returns tf.data

    if isinstance(value, tf.data.Dataset):
        if value.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise DatasetError(f"dataset function {name}: {part} is an infinite tf.data.Dataset; give a finite "
                               "one (no repeat()), fitbench makes the epochs")
        elements = list(value.as_numpy_iterator())
        if not elements or not all(isinstance(e, tuple) and len(e) == 2 for e in elements[:1]):
            raise DatasetError(f"dataset function {name}: {part} must yield unbatched (x, y) pairs")
        return np.stack([e[0] for e in elements]), np.stack([e[1] for e in elements])
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise DatasetError(f"dataset function {name}: {part} is {type(value).__name__}; it must {expected}")
    x, y = (np.asarray(array) for array in value)
    for what, array in (("inputs", x), ("targets", y)):
        if array.dtype.kind not in "biuf" or array.ndim == 0:
            raise DatasetError(f"dataset function {name}: {part} {what} are {array.dtype} of shape {array.shape}; "
                               "give numeric arrays with one row per sample")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DatasetError(f"dataset function {name}: {part} {what} hold NaN or infinite values")
    return x, y


def fingerprint(parts: Mapping[str, tuple[np.ndarray, np.ndarray]], rows: int = 256) -> str:
    """A short content hash: every part's shapes and dtypes, and the bytes of its first rows."""
    digest = hashlib.sha256()
    for part in sorted(parts):
        for array in parts[part]:
            digest.update(f"{part}:{array.shape}:{array.dtype.str};".encode())
            digest.update(np.ascontiguousarray(array[:rows]).tobytes())
    return "sha256:" + digest.hexdigest()[:16]


def _plain(value: Any) -> Any:
    """JSON-able: the arguments as a record stores them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


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


def held_out_count(dataset: Dataset, validation: int | float | str | None) -> int:
    """How many training samples `validation` holds out (0 for the test set or the data's own split)."""
    total = len(dataset.y_train)
    if validation is None:
        if dataset.x_val is None:
            raise ValueError(f"{dataset.name} has no validation split of its own: give the workload "
                             "validation= a count or fraction of the training samples, or 'test'")
        held_out = 0
    elif validation == "test":
        held_out = 0
    elif isinstance(validation, str):
        raise ValueError(f"validation={validation!r}: give a count, a fraction, 'test', or None")
    else:
        held_out = int(round(validation * total)) if isinstance(validation, float) else int(validation)
    if not 0 <= held_out < total:
        raise ValueError(f"validation={validation!r} leaves no training samples out of {total}")
    return held_out


def split_sizes(dataset: Dataset, validation: int | float | str | None, train_samples: int | None = None,
                validation_samples: int | None = None, test_samples: int | None = None) -> dict[str, int]:
    """The train and validation sample counts `split` gives, without building its arrays."""
    held_out = held_out_count(dataset, validation)

    def kept(count: int, keep: int | None) -> int:
        return count if keep is None else min(count, keep)

    if validation is None:
        val = kept(len(dataset.y_val), validation_samples)
    elif held_out == 0:  # the test set validates
        val = kept(len(dataset.y_test), test_samples)
    else:
        val = kept(held_out, validation_samples)
    return {"train": kept(len(dataset.y_train) - held_out, train_samples), "validation": val}


def split(
    dataset: Dataset,
    validation: int | float | str | None,
    validation_at: str = "start",
    input_shape: tuple[int, ...] | None = None,
    train_samples: int | None = None,
    validation_samples: int | None = None,
    test_samples: int | None = None,
    pixel_scale: float = 1 / 255,
) -> Splits:
    """Train, validation and test arrays for a model (inputs float32 when floating or images).

    `validation` is a count or a fraction of the training samples to hold out, ``"test"`` to
    validate on the test set (as the CNN guide does), or None for the data's own validation
    split (a dataset function's ``validation``); `validation_at` says whether held-out samples
    are the first ones (``start``, as the batch-size notebook slices them) or the last ones
    (``end``, as Keras' ``validation_split`` takes them). The optional ``*_samples`` keep
    only the first N of each part (a bounded schedule, or the TPU-friendly trims of the CNN
    guide). Registered images are multiplied by `pixel_scale` (1/255 gives [0, 1]) and
    reshaped to `input_shape` (None: as stored).
    """
    total = len(dataset.y_train)
    held_out = held_out_count(dataset, validation)
    if validation_at == "start":
        val, train = slice(0, held_out), slice(held_out, total)
    elif validation_at == "end":
        train, val = slice(0, total - held_out), slice(total - held_out, total)
    else:
        raise ValueError(f"validation_at must be 'start' or 'end', not {validation_at!r}")

    def prepare(inputs: np.ndarray, targets: np.ndarray, keep: int | None):
        inputs, targets = inputs[:keep], targets[:keep]
        if dataset.images:
            shape = input_shape or inputs.shape[1:]
            inputs = (inputs.astype(np.float32) * np.float32(pixel_scale)).reshape((len(inputs), *shape))
        else:
            inputs = inputs.astype(np.float32) if inputs.dtype.kind == "f" else inputs
            if input_shape is not None:
                inputs = inputs.reshape((len(inputs), *input_shape))
        targets = targets.astype(np.int32) if targets.dtype.kind in "iub" else targets.astype(np.float32)
        return inputs, targets

    x_train, y_train = prepare(dataset.x_train[train], dataset.y_train[train], train_samples)
    x_test, y_test = prepare(dataset.x_test, dataset.y_test, test_samples)
    if validation is None:
        x_val, y_val = prepare(dataset.x_val, dataset.y_val, validation_samples)
        return Splits(x_train, y_train, x_val, y_val, x_test, y_test)
    if held_out == 0:  # validate on the test set (the same arrays, not a copy)
        return Splits(x_train, y_train, x_test, y_test, x_test, y_test)
    x_val, y_val = prepare(dataset.x_train[val], dataset.y_train[val], validation_samples)
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test)
