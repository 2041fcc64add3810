"""The datasets of the paper as binary ±1 tasks: CIFAR-10, CIFAR-5m and SVHN.

    x_train, y_train, x_test, y_test = load_task("cifar10-bin", n_train=1000, n_test=1000, seed=0)

returns float32 images (n, image_size, image_size, 3) (NHWC) and float32 labels (n,) in {+1, -1}.

Tasks (the first class list is labelled +1, the second -1; ``classes=`` replaces the lists):
    cifar10-bin    CIFAR-10, classes 0-4 (airplane..deer) vs 5-9 (dog..truck)
    cifar10-pair   CIFAR-10, one class vs another: airplane (0) vs automobile (1) by default
    cifar5m-bin    CIFAR-5m, classes 0-4 vs 5-9
    svhn-parity    SVHN, even digits vs odd digits
    synthetic-bin  generated images (no download): for tests and demos without the datasets

Which samples
-------------
Every split has one seed-determined order, its *stream*: a random permutation of the split's
images of the task's classes, regrouped into consecutive (+1, -1) pairs (each pair in random
order; the surplus of the larger side is dropped). A training set is a slice of the training
stream: ``load_task(..., n_train=n, skip=m)`` returns ``stream[m : m + n]``. Hence training sets
are deterministic given the seed, nested in n (prefixes), balanced to within one sample, and
``skip=m`` gives fresh samples, disjoint from the training set of ``n_train=m``. The test set is
a prefix of the test split's stream for the fixed seed TEST_SEED: the same for every seed, and
nested in n_test.

CIFAR-5m (Nakkiran et al. 2021, github.com/preetum/cifar5m) comes as six files of ~1M images.
We use parts 0-4 for training and part 5 for testing. The training stream is part 0's stream,
then part 1's, ... (each part shuffled on its own), so a run with n up to ~1M reads part 0 only,
and parts are downloaded and opened only when a stream reaches them. Uncompressed npz members
are memory-mapped, so no part is held in memory.

Preprocessing
-------------
Block-average downsampling 32 -> image_size, then per-channel standardization with the mean and
std (at that image_size) of the whole training split of the task's classes: CIFAR-10's 50,000
training images, CIFAR-5m's part 0, SVHN's train_32x32.mat. Every n, seed and skip share one
preprocessing, and the full training split has per-channel mean 0 and std 1.

Files
-----
The data cache is ``data_dir``, else $NTK_DATA_DIR, else ~/.cache/ntk-limits/data. Missing files
are downloaded from their official sources (:mod:`ntk_utils.downloads`: checksummed, resumable);
fetch them ahead of parallel runs with ``python -m ntk_utils.data cifar10 svhn``.

Every file read is recorded; files_fingerprint() hashes them for results.json, so a run on a
re-encoded or otherwise different copy of a dataset is told apart from one on the official files.

This module imports only numpy, scipy, tqdm and the standard library (with ntk_utils.downloads), so it
is cheap to import.
"""
import functools
import hashlib
import json
import os
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import scipy.io

from ntk_utils.downloads import CIFAR10_BATCHES, CIFAR10_DIR, SOURCES, DataError, cifar10_folder, fetch_file

# task -> (dataset, default (+1 classes, -1 classes))
TASK_SPECS = {
    "cifar10-bin": ("cifar10", ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))),
    "cifar10-pair": ("cifar10", ((0,), (1,))),
    "cifar5m-bin": ("cifar5m", ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))),
    "svhn-parity": ("svhn", ((0, 2, 4, 6, 8), (1, 3, 5, 7, 9))),
    "synthetic-bin": ("synthetic", ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))),
}
TASKS = tuple(TASK_SPECS)
CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CLASS_NAMES = {"cifar10": CIFAR_NAMES, "cifar5m": CIFAR_NAMES, "svhn": tuple("0123456789"),
               "synthetic": tuple(f"class {k}" for k in range(10))}
IMAGE_SIZES = (1, 2, 4, 8, 16, 32)   # divisors of 32: block averaging is exact

# dataset -> (training splits in stream order, test split)
SPLITS = {
    "cifar10": (("train",), "test"),
    "cifar5m": (("part0", "part1", "part2", "part3", "part4"), "part5"),
    "svhn": (("train",), "test"),
    "synthetic": (("train",), "test"),
}
TEST_SEED = 2022  # the test set's stream: one fixed order, whatever the training seed


def resolve_data_dir(data_dir=None):
    """The data cache as an absolute Path: data_dir, else $NTK_DATA_DIR, else ~/.cache/ntk-limits/data."""
    d = data_dir or os.environ.get("NTK_DATA_DIR") or Path.home() / ".cache" / "ntk-limits" / "data"
    return Path(d).expanduser().resolve()


# ----------------------------------------------------------------------------- fetching a dataset

def fetch(dataset, data_dir=None):
    """Make sure every file of a dataset ("cifar10", "cifar5m" or "svhn") is in the data cache."""
    train, test = SPLITS[dataset]
    root = str(resolve_data_dir(data_dir))
    for split in train + (test,):
        _load_split(dataset, split, root)


# ----------------------------------------------------------------------------- which files were read

_FILES_READ = {}        # absolute path -> (path relative to its data root, (size, mtime_ns) when read, official)
_SYNTHETIC_READ = [False]


def _record(path, root, official=None):
    """Note that ``path`` (under the data root ``root``) was read. official: True when the file
    passed the official checksum on reading, None when that is unknown."""
    st = os.stat(path)
    _FILES_READ[str(Path(path).resolve())] = (Path(path).relative_to(root).as_posix(), (st.st_size, st.st_mtime_ns),
                                              official)


def reset_files_read():
    """Forget the files read so far (tests)."""
    _FILES_READ.clear()
    _SYNTHETIC_READ[0] = False


@functools.lru_cache(maxsize=None)
def _sha256_16(path, size, mtime_ns):
    """First 16 hex digits of the file's SHA-256, read in chunks; cached per (path, size, mtime)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()[:16]


def files_fingerprint():
    """What data this process read, for results.json:
    {"files": {name: {"bytes", "sha256" (16 hex), "official"}}, "sha256": 16 hex over all files
    (None if none), "official": True if every file passed an official checksum else None (unknown),
    "synthetic": whether the generated task was used, "note"}. name: the path relative to the
    data root (absolute when files from two data roots were read). A file changed on disk since
    it was read is marked "changed": the hash is of today's bytes, not those used."""
    entries = sorted(_FILES_READ.items())
    relative = [rel for _, (rel, _, _) in entries]
    files = {}
    for path, (rel, stamp, official) in entries:
        st = os.stat(path)
        info = {"bytes": st.st_size, "sha256": _sha256_16(path, st.st_size, st.st_mtime_ns), "official": official}
        if (st.st_size, st.st_mtime_ns) != stamp:
            info["changed"] = True
        files[rel if len(set(relative)) == len(relative) else path] = info
    combined = hashlib.sha256(json.dumps({k: v["sha256"] for k, v in files.items()}, sort_keys=True).encode())
    out = {"files": files, "sha256": combined.hexdigest()[:16] if files else None,
           "official": True if files and all(v["official"] for v in files.values()) else None,
           "synthetic": _SYNTHETIC_READ[0]}
    if any(CIFAR10_DIR in name for name in files):
        out["note"] = ("CIFAR-10 batches: no official checksums of the extracted files are published; "
                       "compare the sha256 with that of an extraction of the official archive")
    return out


# ----------------------------------------------------------------------------- decoding

def _corrupt(path, e):
    return DataError(f"{path} is corrupted or truncated ({type(e).__name__}: {e}); delete it and run again")


def _read_cifar10_batch(path, labels_only=False):
    """One official pickle -> images (N, 32, 32, 3) uint8, labels (N,) int64 (or the labels only)."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        # rows hold the R plane, then G, then B (each 32x32, row-major)
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as e:  # any failure to parse the file means the file is bad
        raise _corrupt(path, e) from None
    if len(x) != len(y):
        raise _corrupt(path, ValueError(f"{len(x)} images but {len(y)} labels"))
    return y if labels_only else (x, y)


def _read_svhn(path, labels_only=False):
    """Official .mat -> images (N, 32, 32, 3) uint8, labels (N,) int64 with digit 0 as 0 (not 10)
    (or the labels only)."""
    try:
        if labels_only:
            return scipy.io.loadmat(path, variable_names=["y"])["y"].reshape(-1).astype(np.int64) % 10
        mat = scipy.io.loadmat(path)
        x, y = mat["X"], mat["y"]
        assert x.shape[:3] == (32, 32, 3) and x.shape[3] == y.size, f"X {x.shape}, y {y.shape}"
    except Exception as e:
        raise _corrupt(path, e) from None
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2), dtype=np.uint8), y.reshape(-1).astype(np.int64) % 10


def _npz_memmap(path, key):
    """A read-only memmap of an npz member stored without compression, or None if compressed."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(key + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)  # zip local file header; the member's bytes follow its name and extra field
        if header[:4] != b"PK\x03\x04":
            raise ValueError("bad zip local header")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        offset = f.tell()
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _read_cifar5m_part(path, labels_only=False):
    """Official part .npz -> images (N, 32, 32, 3) uint8 (memory-mapped when possible), labels (N,)
    int64 (or the labels only)."""
    try:
        with np.load(path) as npz:
            y = npz["Y"].astype(np.int64)
            if labels_only:
                return y
            x = _npz_memmap(path, "X")
            if x is None:  # a compressed copy: nothing to map, read the whole part
                x = npz["X"]
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3) and len(x) == len(y), \
            f"X {x.dtype} {x.shape}, Y {y.shape}"
    except Exception as e:
        raise _corrupt(path, e) from None
    return x, y


# dataset -> reader(path, labels_only=False): (images (N, 32, 32, 3) uint8, labels (N,) int64) of one file
READERS = {"cifar10": _read_cifar10_batch, "svhn": _read_svhn, "cifar5m": _read_cifar5m_part}
OFFLINE_HINTS = {"svhn": "To work offline, place train_32x32.mat and test_32x32.mat in {root}/.",
                 "cifar5m": "To work offline, place the CIFAR-5m files part0.npz ... part5.npz in {root}/cifar5m/."}


def _split_files(dataset, split):
    """The files holding one split of a dataset, in order, as paths relative to the data cache."""
    if dataset == "cifar10":
        return [f"{CIFAR10_DIR}/{f}" for f in (CIFAR10_BATCHES if split == "train" else ["test_batch"])]
    if dataset in ("svhn", "cifar5m"):
        return [f"{split}_32x32.mat" if dataset == "svhn" else f"cifar5m/{split}.npz"]
    raise ValueError(f"unknown dataset {dataset!r}")


@functools.lru_cache(maxsize=None)
def _load_split(dataset, split, root):
    """(images (N, 32, 32, 3) uint8, labels (N,) int64 in 0..9) of one split, fetched if needed.
    Cached for the process: the raw arrays, not the preprocessed ones (those depend on the task)."""
    if dataset == "synthetic":
        _SYNTHETIC_READ[0] = True
        return _synthetic(split)
    root, names = Path(root), _split_files(dataset, split)
    if dataset == "cifar10":
        cifar10_folder(root)   # extracted from the tarball (fetched) if needed
        paths = [root / name for name in names]
    else:
        paths = [fetch_file(name, root, OFFLINE_HINTS[dataset].format(root=root)) for name in names]
    parts = [READERS[dataset](path) for path in paths]
    for name, path in zip(names, paths):   # official: fetch_file checked the md5, where SOURCES has one
        _record(path, root, official=True if SOURCES.get(name, (None, None))[1] else None)
    if len(parts) == 1:   # as read: a CIFAR-5m part stays memory-mapped
        return parts[0]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


@functools.lru_cache(maxsize=None)
def _split_labels(dataset, split, root):
    """Labels (N,) int64 of one split, read from files already in the data cache (DataError when
    one is missing: nothing is downloaded or extracted). Not recorded as read (see files_fingerprint)."""
    if dataset == "synthetic":
        return _synthetic(split)[1]
    files = [Path(root) / name for name in _split_files(dataset, split)]
    if missing := [str(f) for f in files if not f.is_file()]:
        raise DataError(f"not in the data cache: {', '.join(missing)}")
    return np.concatenate([READERS[dataset](f, labels_only=True) for f in files])


def _synthetic(split, n={"train": 4000, "test": 1000}):
    """Generated 32x32 RGB images, labels 0..9: class c is a blurred blob around a class-specific
    position plus noise, so classes 0-4 vs 5-9 is learnable but not trivial. Deterministic."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = rng.integers(0, 10, n[split])
    grid = np.arange(32)
    centers = 6 + 20 * np.stack([(np.arange(10) % 5) / 4, (np.arange(10) // 5) * 1.0], axis=1)
    cy, cx = centers[labels, 0] + rng.normal(0, 6, len(labels)), centers[labels, 1] + rng.normal(0, 6, len(labels))
    blob = np.exp(-((grid[None, :, None] - cy[:, None, None]) ** 2 + (grid[None, None, :] - cx[:, None, None]) ** 2) / 60)
    images = 128 + 60 * blob[..., None] * rng.uniform(0.5, 1.5, (len(labels), 1, 1, 3)) \
        + rng.normal(0, 30, (len(labels), 32, 32, 3))
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


# ----------------------------------------------------------------------------- samples

def _stream(labels, pos, neg, rng):
    """Indices into labels (shape (2 * min(n_pos, n_neg),)): a random permutation of the images of
    classes pos + neg, regrouped into (+1, -1) pairs, each pair in random order, so that every
    prefix is balanced to within one sample."""
    perm = rng.permutation(len(labels))
    p, q = perm[np.isin(labels[perm], pos)], perm[np.isin(labels[perm], neg)]
    k = min(len(p), len(q))
    pairs = np.stack([p[:k], q[:k]], axis=1)
    flip = rng.random(k) < 0.5  # so the labels do not simply alternate +1, -1, +1, ...
    pairs[flip] = pairs[flip, ::-1]
    return pairs.reshape(-1)


def _select(dataset, splits, pos, neg, seed, start, n, root, what):
    """[(split, indices)] of stream[start : start + n], the stream running through splits in order.
    A split is loaded only if the slice reaches it."""
    chosen, offset = [], 0  # offset: stream position where the current split begins
    for k, split in enumerate(splits):
        if offset >= start + n:
            break
        _, labels = _load_split(dataset, split, root)
        order = _stream(labels, pos, neg, np.random.default_rng([seed, k]))
        lo, hi = max(start - offset, 0), min(start + n - offset, len(order))
        if lo < hi:
            chosen.append((split, order[lo:hi]))
        offset += len(order)
    if offset < start + n:
        raise ValueError(f"{what} = {start + n} but {dataset} {'+'.join(splits)} has only {offset} balanced "
                         f"samples of classes {pos} vs {neg}")
    return chosen


def _downsample(x, image_size):
    """(N, S, S, C) -> (N, image_size, image_size, C) float32, each pixel the mean of its block.
    S / image_size is a power of two: repeated 2x2 averaging is exact and ~4x faster than one
    reshape-mean over the block axes."""
    x = x.astype(np.float32)
    while x.shape[1] > image_size:
        x = 0.25 * (x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2])
    return x


def _take(x, idx):
    """x[idx] as an ndarray, reading a memmap in file order."""
    order = np.argsort(idx, kind="stable")
    out = np.empty((len(idx),) + x.shape[1:], x.dtype)
    out[order] = x[idx[order]]
    return out


@functools.lru_cache(maxsize=None)
def _channel_stats(dataset, split, classes, image_size, root):
    """Per-channel mean and std, each (3,) float32, of the split's images of the given classes
    after downsampling to image_size, accumulated in chunks (CIFAR-5m part 0 is 1M images)."""
    x, labels = _load_split(dataset, split, root)
    idx = np.flatnonzero(np.isin(labels, classes))
    total, squares = np.zeros(3), np.zeros(3)
    for i in range(0, len(idx), 1024):  # chunks keep the float64 copies small
        chunk = _downsample(_take(x, idx[i:i + 1024]), image_size).reshape(-1, 3).astype(np.float64)
        total += chunk.sum(axis=0)
        squares += np.einsum("ij,ij->j", chunk, chunk)
    count = len(idx) * image_size * image_size
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0))
    return mean.astype(np.float32), std.astype(np.float32)


def _is_class_id(c):
    """An int or numpy integer, not a bool: 3.7, True or "3" are no class ids (never rounded or cast)."""
    return isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_))


def _check_classes(classes):
    """((+1 ids), (-1 ids)) as sorted tuples; a bare id on a side means that one class."""
    try:
        pos, neg = ([side] if _is_class_id(side) else list(side) for side in classes)
    except (TypeError, ValueError):
        raise ValueError(f"classes must be a pair of class-id lists, e.g. ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)) "
                         f"or ((3,), (5,)); got {classes!r}") from None
    if bad := [c for c in pos + neg if not _is_class_id(c)]:
        raise ValueError(f"classes: class ids must be integers in 0..9, got {bad[0]!r} in {classes!r}")
    pos, neg = [int(c) for c in pos], [int(c) for c in neg]
    if not pos or not neg or set(pos) & set(neg) or not all(0 <= c <= 9 for c in pos + neg):
        raise ValueError(f"classes must be two non-empty, disjoint lists of ids in 0..9; got {classes!r}")
    return tuple(sorted(set(pos))), tuple(sorted(set(neg)))


def _check_count(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
    return int(value)


def check(task, classes=None, image_size=32):
    """The task's class pair ((+1 ids), (-1 ids)) (``classes``, else the task's default); raises
    ValueError naming what is wrong with the task, the classes or the image size."""
    if task not in TASK_SPECS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must divide 32 ({', '.join(map(str, IMAGE_SIZES[::-1]))}), got {image_size!r}")
    return _check_classes(TASK_SPECS[task][1] if classes is None else classes)


def describe(task, classes=None):
    """e.g. "cifar10-pair (airplane vs automobile)": the task and its class pair, for titles."""
    names = CLASS_NAMES[TASK_SPECS[task][0]]
    pos, neg = check(task, classes)
    return f"{task} ({'+'.join(names[c] for c in pos)} vs {'+'.join(names[c] for c in neg)})"


def load_task(name, n_train, n_test, seed=0, image_size=32, classes=None, skip=0, data_dir=None):
    """(x_train, y_train, x_test, y_test) of a binary task: images (n, s, s, 3) float32 (NHWC,
    s = image_size), labels (n,) float32 in {+1, -1}.

    name: one of TASKS. n_train, skip: the training set is samples skip .. skip + n_train - 1 of
    the seed's training stream (see the module docstring). n_test: a prefix of the fixed test
    stream. image_size: 32 or a divisor of it (block averaging). classes: (+1 ids, -1 ids),
    e.g. ((3,), (5,)), replacing the task's default. data_dir: the data cache (see resolve_data_dir).
    """
    pos, neg = check(name, classes, image_size)
    dataset = TASK_SPECS[name][0]
    n_train, n_test, skip, seed = (_check_count(v, w) for v, w in
                                   [(n_train, "n_train"), (n_test, "n_test"), (skip, "skip"), (seed, "seed")])
    root = str(resolve_data_dir(data_dir))

    train_splits, test_split = SPLITS[dataset]
    train = _select(dataset, train_splits, pos, neg, seed, skip, n_train, root, f"{name}: n_train + skip")
    test = _select(dataset, (test_split,), pos, neg, TEST_SEED, 0, n_test, root, f"{name}: n_test")
    mean, std = _channel_stats(dataset, train_splits[0], pos + neg, int(image_size), root)

    def assemble(chosen):
        n = sum(len(idx) for _, idx in chosen)
        images, labels = np.empty((n, image_size, image_size, 3), np.float32), np.empty(n, np.float32)
        at = 0
        for split, idx in chosen:
            x, classes_of = _load_split(dataset, split, root)
            labels[at:at + len(idx)] = np.where(np.isin(classes_of[idx], pos), 1.0, -1.0)
            for i in range(0, len(idx), 4096):  # in chunks: no full-size float temporaries (n may be 1M)
                block = idx[i:i + 4096]
                images[at + i:at + i + len(block)] = (_downsample(_take(x, block), image_size) - mean) / std
            at += len(idx)
        return images, labels

    return (*assemble(train), *assemble(test))



def available(task, classes=None, data_dir=None):
    """(n_train, n_test): how many balanced samples of the task's two class groups its training
    stream (all training splits) and its test split hold, i.e. the largest n_train + skip and
    n_test that load_task accepts. Reads labels only, of files already in the data cache: raises
    DataError when a file is missing (it downloads nothing)."""
    pos, neg = check(task, classes)
    dataset = TASK_SPECS[task][0]
    root = str(resolve_data_dir(data_dir))
    train_splits, test_split = SPLITS[dataset]

    def balanced(split):
        labels = _split_labels(dataset, split, root)
        return 2 * min(int(np.isin(labels, pos).sum()), int(np.isin(labels, neg).sum()))

    return sum(balanced(split) for split in train_splits), balanced(test_split)

if __name__ == "__main__":
    # python -m ntk_utils.data cifar10 svhn   (download into the data cache ahead of parallel runs)
    for name in sys.argv[1:] or ["cifar10"]:
        fetch(name)
        print(f"{name}: ready in {resolve_data_dir()}")
