"""The dataset loader (registered names, a user's function, splits) and this suite's seed datasets
(fixtures/datasets.py: the IDX parser, validation, lookup order)."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pytest

from fitbench.measure import datasets
from fitbench.measure.datasets import CorruptDataset, DatasetNotFound
from fixtures import datasets as seed
from tests.helpers import idx_bytes, synthetic_images, write_dataset, write_idx

SHARED = Path(os.environ.get("FITBENCH_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "datasets")


@pytest.fixture
def no_default_locations(monkeypatch, tmp_path):
    """Isolate the lookup from this machine: empty Keras home, no Debian datasets, no env var."""
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(seed, "DEBIAN_DATASETS", tmp_path / "usr-share-datasets")
    return tmp_path


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    images, _ = synthetic_images(5, seed=0)
    path = write_idx(tmp_path / ("images.gz" if compress else "images"), images, compress=compress)
    np.testing.assert_array_equal(seed.read_idx(path), images)


def test_read_idx_big_endian_int32(tmp_path):
    values = np.arange(6, dtype=">i4").reshape(2, 3)
    path = tmp_path / "ints.gz"
    path.write_bytes(gzip.compress(idx_bytes(values, type_code=0x0C)))
    np.testing.assert_array_equal(seed.read_idx(path), values)


def test_bad_magic_names_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x12\x34\x08\x01" + b"\x00\x00\x00\x02" + b"\x01\x02"))
    with pytest.raises(CorruptDataset, match=r"train-labels-idx1-ubyte\.gz: bad IDX magic number 0x12340801"):
        seed.read_idx(path)


def test_truncated_gzip_stream_names_file(tmp_path):
    images, _ = synthetic_images(50, seed=0)
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CorruptDataset, match=r"train-images-idx3-ubyte\.gz: cannot decompress"):
        seed.read_idx(path)


def test_truncated_data_reports_expected_and_actual_bytes(tmp_path):
    images, _ = synthetic_images(3, seed=0)
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(images)[:-10]))
    with pytest.raises(CorruptDataset, match=r"truncated: header says shape \(3, 28, 28\) \(2352 data bytes\) "
                                             r"but the file holds 2342"):
        seed.read_idx(path)


def test_trailing_bytes_are_an_error(tmp_path):
    labels = np.zeros(4, np.uint8)
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(labels) + b"\x00"))
    with pytest.raises(CorruptDataset, match="has trailing bytes"):
        seed.read_idx(path)


def test_header_shorter_than_announced(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03\x00\x00"))
    with pytest.raises(CorruptDataset, match="announces 3 dimensions"):
        seed.read_idx(path)


def test_label_out_of_range(tmp_path, no_default_locations):
    directory = write_dataset(tmp_path, "mnist", train=20, test=10)
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, np.uint8))
    with pytest.raises(CorruptDataset, match=r"mnist test labels go up to 12, expected 0..9"):
        datasets.load("mnist", tmp_path, allow_download=False)


def test_image_and_label_counts_must_agree(tmp_path, no_default_locations):
    directory = write_dataset(tmp_path, "fashion_mnist", train=20, test=10)
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(CorruptDataset, match="has 20 train images but 19 train labels"):
        datasets.load("fashion_mnist", tmp_path, allow_download=False)


def test_wrong_image_shape(tmp_path, no_default_locations):
    directory = write_dataset(tmp_path, "mnist", train=20, test=10)
    write_idx(directory / "train-images-idx3-ubyte.gz", np.zeros((20, 32, 32), np.uint8))
    with pytest.raises(CorruptDataset, match=r"images have shape \(20, 32, 32\), expected \(N, 28, 28\)"):
        datasets.load("mnist", tmp_path, allow_download=False)


def test_partial_directory_lists_missing_files(tmp_path, no_default_locations):
    directory = write_dataset(tmp_path, "mnist", train=20, test=10)
    (directory / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(CorruptDataset, match="lacks t10k-images-idx3-ubyte.gz"):
        datasets.load("mnist", tmp_path, allow_download=False)


def test_unknown_dataset():
    with pytest.raises(datasets.DatasetError, match=r"unknown dataset 'cifar' \(registered: fashion_mnist, mnist\)"):
        datasets.load("cifar", allow_download=False)


# --- lookup order ---------------------------------------------------------------------------

def test_lookup_order_option_then_keras_cache_then_debian(tmp_path, no_default_locations, monkeypatch):
    option_dir, env_dir = tmp_path / "option", tmp_path / "env"
    keras_cache = tmp_path / "keras-home" / "datasets"
    debian = tmp_path / "usr-share-datasets"
    for root in (option_dir, env_dir, keras_cache, debian):
        write_dataset(root, "fashion_mnist", train=20, test=10)
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(env_dir))

    assert seed.find("fashion_mnist", option_dir) == option_dir / "fashion-mnist"
    assert datasets.load("fashion_mnist", allow_download=False).source == str(env_dir / "fashion-mnist")
    monkeypatch.delenv(datasets.DATA_DIR_ENV)
    assert seed.find("fashion_mnist") == keras_cache / "fashion-mnist"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    assert seed.find("fashion_mnist") == debian / "fashion-mnist"
    assert datasets.load("fashion_mnist", allow_download=False).source == str(debian / "fashion-mnist")


def test_keras_cache_mnist_npz(tmp_path, no_default_locations):
    images, labels = synthetic_images(30, seed=3)
    cache = tmp_path / "keras-home" / "datasets"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", x_train=images[:20], y_train=labels[:20], x_test=images[20:], y_test=labels[20:])
    dataset = datasets.load("mnist", allow_download=False)
    assert dataset.source.endswith("mnist.npz")
    assert (len(dataset.y_train), len(dataset.y_test)) == (20, 10)


def test_missing_data_without_download_says_how_to_provide_it(no_default_locations):
    with pytest.raises(DatasetNotFound) as error:
        datasets.load("fashion_mnist", allow_download=False)
    assert "--data-dir" in str(error.value) and datasets.DATA_DIR_ENV in str(error.value)


def test_download_is_the_last_resort(no_default_locations, monkeypatch):
    images, labels = synthetic_images(30, seed=4)
    calls = []

    def fake_download(name):
        calls.append(name)
        return (images[:20], labels[:20]), (images[20:], labels[20:])

    monkeypatch.setattr(seed, "_keras_download", fake_download)
    assert datasets.load("mnist").source == "keras download"
    assert calls == ["mnist"]


def test_failed_download_is_not_found(no_default_locations, monkeypatch):
    def offline(name):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(seed, "_keras_download", offline)
    with pytest.raises(DatasetNotFound, match="Keras could not download it .*no network"):
        datasets.load("mnist")


# --- splits ---------------------------------------------------------------------------------

def test_split_start_holds_out_the_first_images(synthetic_data_dir):
    dataset = datasets.load("fashion_mnist", synthetic_data_dir, allow_download=False)
    splits = datasets.split(dataset, validation=1000, validation_at="start")
    assert splits.sizes == {"train": 5000, "validation": 1000, "test": 1000}
    np.testing.assert_array_equal(splits.y_val, dataset.y_train[:1000])
    np.testing.assert_allclose(splits.x_train[0], dataset.x_train[1000] / 255.0, rtol=1e-6)
    assert splits.x_train.dtype == np.float32 and 0.0 <= splits.x_train.min() and splits.x_train.max() <= 1.0


def test_split_end_fraction_is_kerass_validation_split(synthetic_data_dir):
    dataset = datasets.load("mnist", synthetic_data_dir, allow_download=False)
    splits = datasets.split(dataset, validation=0.2, validation_at="end", input_shape=(784,))
    assert splits.sizes["train"] == 4800 and splits.sizes["validation"] == 1200
    np.testing.assert_array_equal(splits.y_val, dataset.y_train[4800:])
    assert splits.x_train.shape == (4800, 784)


def test_split_subsets(synthetic_data_dir):
    dataset = datasets.load("mnist", synthetic_data_dir, allow_download=False)
    splits = datasets.split(dataset, 1000, train_samples=300, validation_samples=200, test_samples=100)
    assert splits.sizes == {"train": 300, "validation": 200, "test": 100}


# --- the real files -------------------------------------------------------------------------

@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real datasets not at {SHARED}; set FITBENCH_DATA_DIR")
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_real_datasets(name):
    dataset = datasets.load(name, SHARED, allow_download=False)
    assert dataset.x_train.shape == (60000, 28, 28) and dataset.x_test.shape == (10000, 28, 28)
    assert sorted(np.unique(dataset.y_train)) == list(range(10))


def test_uncompressed_idx_files_are_read_as_well(tmp_path):
    from fitbench.measure.datasets import load
    from fixtures.datasets import DIRECTORY_NAMES, IDX_FILES

    directory = tmp_path / DIRECTORY_NAMES["mnist"]
    x_train, y_train = synthetic_images(100, seed=1)
    x_test, y_test = synthetic_images(20, seed=2)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for key, array in arrays.items():  # as other tools and mirrors ship them: no .gz, some with a dot
        name = IDX_FILES[key].removesuffix(".gz")
        write_idx(directory / (name.replace("-idx", ".idx") if key == "x_test" else name), array, compress=False)
    dataset = load("mnist", tmp_path, allow_download=False)
    assert len(dataset.y_train) == 100 and (dataset.x_test == x_test).all()


def test_an_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    from pathlib import Path

    from fitbench.measure.datasets import UnreadableDataset
    from fixtures.datasets import read_idx

    path = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))

    def denied(self, *args, **kwargs):  # root reads any file: deny as a non-root user would be
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    monkeypatch.setattr("gzip.open", lambda *a, **k: denied(path))
    with pytest.raises(UnreadableDataset, match="permission denied; make it readable"):
        read_idx(path)


# --- a user's dataset function ---------------------------------------------------------------------

def _regression(n: int = 40, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 3)), rng.normal(size=n)
    return {"train": (x[:30], y[:30]), "validation": (x[30:35], y[30:35]), "test": (x[35:], y[35:])}


def test_a_dataset_function_gives_its_own_splits_shapes_and_identity():
    dataset = datasets.load(_regression, args={"seed": 1})
    assert dataset.identity["function"].endswith("test_datasets._regression")
    assert dataset.identity["args"] == {"seed": 1}
    assert dataset.classes is None and not dataset.images
    splits = datasets.split(dataset, validation=None)
    assert splits.sizes == {"train": 30, "validation": 5, "test": 5}
    assert splits.x_train.dtype == np.float32 and splits.y_train.dtype == np.float32  # float64 in, float32 out
    # Another seed is other data: another fingerprint, so the two never compare as alike.
    assert datasets.load(_regression, args={"seed": 2}).identity["fingerprint"] != dataset.identity["fingerprint"]


def test_a_dataset_function_may_return_tf_data_and_integer_labels_give_the_classes():
    import tensorflow as tf

    def classes() -> dict:
        x, y = np.arange(24, dtype=np.float32).reshape(12, 2), np.arange(12) % 3
        return {"train": tf.data.Dataset.from_tensor_slices((x, y)), "test": (x, y)}

    dataset = datasets.load(classes)
    assert dataset.classes == 3 and dataset.x_train.shape == (12, 2)
    # A DatasetError: the test fails in one line naming the fix before anything trains.
    with pytest.raises(datasets.SplitError, match="no validation split of its own: give the workload validation="):
        datasets.split(dataset, validation=None)
    assert datasets.split(dataset, validation=4).sizes == {"train": 8, "validation": 4, "test": 12}


@pytest.mark.parametrize("returned, message", [
    ((1, 2), "returned tuple; it must return {'train': (x, y)"),
    ({"train": ([[1.0]], [1.0])}, "returned ['train']; it must return"),
    ({"train": ([[1.0], [2.0]], [1.0]), "test": ([[1.0]], [1.0])}, "train has 2 inputs and 1 targets"),
    ({"train": ([[np.nan]], [1.0]), "test": ([[1.0]], [1.0])}, "train inputs hold NaN"),
    ({"train": ([["a"]], [1.0]), "test": ([[1.0]], [1.0])}, "train inputs are <U1"),
    ({"train": ([[1.0]], [1.0]), "test": ([[1.0, 2.0]], [1.0])}, "test inputs have shape (2,) per sample"),
])
def test_a_dataset_function_that_returns_the_wrong_thing_is_named_with_the_fix(returned, message):
    with pytest.raises(datasets.DatasetError, match=re.escape(message)):
        datasets.load(lambda: returned)


def test_a_dataset_function_called_with_arguments_it_does_not_take_says_so():
    with pytest.raises(datasets.DatasetError, match=r"cannot be called with dataset_args \{'size': 3\}"):
        datasets.load(_regression, args={"size": 3})


def test_a_dataset_function_that_raises_is_one_line_naming_it_and_its_error():
    def needs_a_file(path="nowhere.csv"):
        raise FileNotFoundError(f"[Errno 2] No such file or directory: {path!r}")

    with pytest.raises(datasets.DatasetError) as raised:
        datasets.load(needs_a_file)
    message = str(raised.value)
    assert message.startswith("dataset function ") and "needs_a_file raised FileNotFoundError: " in message
    assert "\n" not in message and isinstance(raised.value.__cause__, FileNotFoundError)

    def takes_size(size):
        raise TypeError("an error inside the function, not a bad argument")

    with pytest.raises(datasets.DatasetError, match="raised TypeError: an error inside the function"):
        datasets.load(takes_size, args={"size": 3})


@pytest.mark.parametrize("validation, at, keep", [
    (1000, "start", {}), (0.2, "end", {}), ("test", "start", {}), (1000, "start", {"train_samples": 300}),
    (1000, "start", {"train_samples": 300, "validation_samples": 200, "test_samples": 100}),
    ("test", "start", {"test_samples": 100}),
])
def test_split_sizes_are_the_sizes_split_gives(synthetic_data_dir, validation, at, keep):
    dataset = datasets.load("fashion_mnist", synthetic_data_dir, allow_download=False)
    sizes = datasets.split(dataset, validation, at, **keep).sizes
    assert datasets.split_sizes(dataset, validation, **keep) == {"train": sizes["train"],
                                                                 "validation": sizes["validation"]}


def test_split_sizes_of_a_dataset_function_with_its_own_validation():
    dataset = datasets.load(_regression, args={"seed": 1})
    assert datasets.split_sizes(dataset, None, validation_samples=3) == {"train": 30, "validation": 3}


def _two_inputs(kind: str = "dict", as_tf_data: bool = False) -> dict:
    """Two named inputs (a dict, as a functional model with named Inputs takes them) or a tuple."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    left, right, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 4, 2)), np.arange(50) % 2

    def part(rows: slice):
        x = {"left": left[rows], "right": right[rows]} if kind == "dict" else (left[rows], right[rows])
        return tf.data.Dataset.from_tensor_slices((x, y[rows])) if as_tf_data else (x, y[rows])

    return {"train": part(slice(0, 40)), "test": part(slice(40, 50))}


@pytest.mark.parametrize("kind, as_tf_data", [("dict", False), ("dict", True), ("tuple", False), ("tuple", True)])
def test_a_dataset_function_may_give_several_inputs_as_a_dict_or_tuple_of_arrays_or_tf_data(kind, as_tf_data):
    dataset = datasets.load(_two_inputs, args={"kind": kind, "as_tf_data": as_tf_data})
    splits = datasets.split(dataset, validation=10)
    shapes = datasets.sample_shape(splits.x_train)
    assert shapes == ({"left": (6,), "right": (4, 2)} if kind == "dict" else ((6,), (4, 2)))
    assert datasets.plain_shape(shapes) == ({"left": [6], "right": [4, 2]} if kind == "dict" else [[6], [4, 2]])
    assert splits.sizes == {"train": 30, "validation": 10, "test": 10} and dataset.classes == 2
    assert all(array.dtype == np.float32 and len(array) == 30 for array in datasets.leaves(splits.x_train))
    # The validation rows are the first ten of every input alike.
    first = datasets.leaves(dataset.x_train)[1][:10].astype(np.float32)
    np.testing.assert_array_equal(datasets.leaves(splits.x_val)[1], first)
    # The same data as arrays or as tf.data is alike; other inputs are other data.
    assert dataset.identity["fingerprint"] == datasets.load(_two_inputs, args={"kind": kind}).identity["fingerprint"]
    parts = {"train": (dataset.x_train, dataset.y_train), "test": (dataset.x_test, dataset.y_test)}
    other = datasets.map_arrays(lambda array: array + 1, dataset.x_train)
    assert datasets.fingerprint(parts) != datasets.fingerprint({**parts, "train": (other, dataset.y_train)})


@pytest.mark.parametrize("returned, message", [
    ({"train": ({"a": [[1.0], [2.0]], "b": [[1.0]]}, [1, 0]), "test": ({"a": [[1.0]], "b": [[1.0]]}, [1])},
     "train inputs have different numbers of rows ([2, 1])"),
    ({"train": ({"a": [[1.0]], "b": [[1.0]]}, [1]), "test": ({"a": [[1.0]], "b": [[1.0, 2.0]]}, [1])},
     "test inputs have shape {'a': (1,), 'b': (2,)} per sample, train inputs {'a': (1,), 'b': (1,)}"),
    ({"train": ({"a": [["x"]]}, [1]), "test": ({"a": [[1.0]]}, [1])}, "train inputs 'a' are <U1"),
    ({"train": ({}, [1]), "test": ({"a": [[1.0]]}, [1])}, "train inputs are an empty dict"),
])
def test_several_inputs_that_do_not_fit_together_are_named_with_the_fix(returned, message):
    with pytest.raises(datasets.DatasetError, match=re.escape(message)):
        datasets.load(lambda: returned)


def test_an_input_shape_for_data_with_several_inputs_says_the_shapes_come_from_the_data():
    dataset = datasets.load(_two_inputs)
    with pytest.raises(ValueError, match="names one input, and the data has several"):
        datasets.split(dataset, validation=10, input_shape=(6,))
