"""ntk_utils.data on tiny files in the official formats (written here), served from the cache or
from a local HTTP server on 127.0.0.1; plus one test on real CIFAR-10 (skipped where absent)."""
import hashlib
import http.server
import io
import os
import pickle
import socket
import tarfile
import threading

import numpy as np
import pytest
import scipy.io

from ntk_utils import data, downloads

BIN = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))


# ----------------------------------------------------------------------------- tiny official files

def _pixels(rng, n):
    """(n, 32, 32, 3) uint8 with different per-channel ranges, so standardization is not a no-op."""
    return rng.integers([100, 0, 50], [200, 100, 250], size=(n, 32, 32, 3)).astype(np.uint8)


def write_cifar10(folder, seed=0, per_batch=10, n_test=20):
    """The official cifar-10-batches-py/ layout; returns raw train and test (images, labels)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    raw = {}
    for name, n in [(f"data_batch_{k}", per_batch) for k in range(1, 6)] + [("test_batch", n_test)]:
        x, y = _pixels(rng, n), rng.permutation(np.arange(n) % 10)
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y],
                 b"data": x.transpose(0, 3, 1, 2).reshape(n, 3072),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        raw[name] = (x, y)
    train = tuple(np.concatenate([raw[f"data_batch_{k}"][j] for k in range(1, 6)]) for j in (0, 1))
    return train, raw["test_batch"]


def cifar10_tarball(tmp_path):
    """Bytes of a tiny cifar-10-python.tar.gz, and the raw arrays in it."""
    src = tmp_path / "src"
    raw = write_cifar10(src / "cifar-10-batches-py")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buf.getvalue(), raw


def write_svhn(root, seed=0):
    """train_32x32.mat (30 images) and test_32x32.mat (20): X (32, 32, 3, N), y (N, 1) in 1..10."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    raw = {}
    for split, n in [("train", 30), ("test", 20)]:
        x, y = _pixels(rng, n), rng.permutation(np.arange(n) % 10 + 1).astype(np.uint8)
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x.transpose(1, 2, 3, 0), "y": y[:, None]})
        raw[split] = (x, y % 10)
    return raw


def write_cifar5m(root, parts=range(6), n=40, compressed=False, seed=0):
    """cifar5m/part{k}.npz with X (n, 32, 32, 3) uint8 and Y int labels (random, so imbalanced)."""
    (root / "cifar5m").mkdir(parents=True, exist_ok=True)
    raw = {}
    for k in range(6):
        rng = np.random.default_rng([seed, k])
        x, y = _pixels(rng, n), rng.integers(0, 10, n)
        if k in parts:
            (np.savez_compressed if compressed else np.savez)(root / "cifar5m" / f"part{k}.npz", X=x, Y=y)
        raw[k] = (x, y)
    return raw


def reference(raw_train, raw_labels, classes, x, size):
    """Independent preprocessing: block means, standardized by the class-filtered train split."""
    def down(z):
        f = 32 // size
        return z.astype(np.float64).reshape(len(z), size, f, size, f, 3).mean(axis=(2, 4))
    t = down(raw_train[np.isin(raw_labels, classes)])
    return (down(x) - t.mean(axis=(0, 1, 2))) / t.std(axis=(0, 1, 2))


def identify(x, candidates):
    """Index into candidates (already preprocessed) of each image of x, asserting an exact match."""
    d = ((x.reshape(len(x), 1, -1) - candidates.reshape(1, len(candidates), -1)) ** 2).max(axis=2)
    ids = d.argmin(axis=1)
    assert np.all(d[np.arange(len(x)), ids] < 1e-8), "an output image is not a preprocessed input image"
    return ids


def md5(b):
    return hashlib.md5(b).hexdigest()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Every source points at a closed port on 127.0.0.1: no test reaches the internet, and the
    in-process caches start empty."""
    base = f"http://127.0.0.1:{closed_port()}"
    for name in list(downloads.SOURCES):
        monkeypatch.setitem(downloads.SOURCES, name, (f"{base}/{name}", None))
    monkeypatch.delenv("NTK_DATA_DIR", raising=False)
    yield
    data._load_split.cache_clear()
    data._channel_stats.cache_clear()


@pytest.fixture
def cifar10_dir(tmp_path, monkeypatch):
    """NTK_DATA_DIR holding a tiny extracted cifar-10-batches-py/ (5 x 10 train, 20 test images)."""
    root = tmp_path / "data"
    raw = write_cifar10(root / "cifar-10-batches-py")
    monkeypatch.setenv("NTK_DATA_DIR", str(root))
    return root, raw


class Server:
    """A local HTTP server for `files` (name -> bytes) that logs each request's Range header.
    honour_range=False ignores Range; truncate=k sends only half of the next k bodies."""

    def __init__(self, files):
        self.files, self.honour_range, self.truncate, self.requests = files, True, 0, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name, asked = self.path.lstrip("/"), self.headers.get("Range")
                server.requests.append((name, asked))
                body = server.files.get(name)
                if body is None:
                    return self.send_error(404)
                start = int(asked[len("bytes="):-1]) if asked and server.honour_range else 0
                if start >= len(body) > 0:
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if server.truncate:
                    server.truncate -= 1
                    payload = payload[:len(payload) // 2]
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server({})
    yield s
    s.close()


# ----------------------------------------------------------------------------- tasks and samples

def test_shapes_dtypes_labels_and_standardization(cifar10_dir):
    root, ((x_tr, y_tr), (x_te, y_te)) = cifar10_dir
    xa, ya, xb, yb = data.load_task("cifar10-bin", 50, 20)  # the whole (balanced) tiny train split
    assert xa.shape == (50, 32, 32, 3) and xb.shape == (20, 32, 32, 3)
    assert ya.shape == (50,) and yb.shape == (20,)
    assert {a.dtype for a in (xa, ya, xb, yb)} == {np.dtype(np.float32)}
    assert set(np.unique(ya)) == {-1.0, 1.0} and ya.sum() == 0 and yb.sum() == 0
    xa64 = xa.astype(np.float64)  # float32 reductions alone are off by ~1e-5
    np.testing.assert_allclose(xa64.mean(axis=(0, 1, 2)), 0, atol=1e-6)
    np.testing.assert_allclose(xa64.std(axis=(0, 1, 2)), 1, atol=1e-6)
    # every image is an input image preprocessed with the train split's statistics, with its label
    ids = identify(xa, reference(x_tr, y_tr, range(10), x_tr, 32))
    assert len(set(ids)) == 50
    np.testing.assert_array_equal(ya, np.where(np.isin(y_tr[ids], BIN[0]), 1, -1))
    ids = identify(xb, reference(x_tr, y_tr, range(10), x_te, 32))  # test: train statistics too
    np.testing.assert_array_equal(yb, np.where(np.isin(y_te[ids], BIN[0]), 1, -1))


def test_downsampling(cifar10_dir):
    root, ((x_tr, y_tr), _) = cifar10_dir
    for size in (16, 8, 1):
        x, y, _, _ = data.load_task("cifar10-bin", 50, 4, image_size=size)
        assert x.shape == (50, size, size, 3)
        np.testing.assert_allclose(x.astype(np.float64).std(axis=(0, 1, 2)), 1, atol=1e-6)  # statistics at this size
        identify(x, reference(x_tr, y_tr, range(10), x_tr, size))
    for bad in (12, 0, 64, 8.0):
        with pytest.raises(ValueError, match="image_size must divide 32"):
            data.load_task("cifar10-bin", 4, 4, image_size=bad)


def test_subsets_nested_balanced_deterministic(cifar10_dir):
    full = data.load_task("cifar10-bin", 50, 20, seed=0)
    for n in (1, 7, 20):
        x, y, _, _ = data.load_task("cifar10-bin", n, 20, seed=0)
        np.testing.assert_array_equal(x, full[0][:n])  # nested, one preprocessing for every n
        np.testing.assert_array_equal(y, full[1][:n])
    assert np.abs(np.cumsum(full[1])).max() <= 1  # every prefix balanced to within one
    assert not np.all(full[1][0::2] == full[1][0])  # and the labels do not merely alternate
    again = data.load_task("cifar10-bin", 50, 20, seed=0)
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a, b)
    other = data.load_task("cifar10-bin", 50, 20, seed=1)
    assert not np.array_equal(full[0][:10], other[0][:10])
    assert np.abs(np.cumsum(other[1])).max() <= 1


def test_fresh_samples_are_disjoint(cifar10_dir):
    root, ((x_tr, y_tr), _) = cifar10_dir
    ref = reference(x_tr, y_tr, range(10), x_tr, 32)
    first = data.load_task("cifar10-bin", 10, 2, seed=3)[0]
    fresh = data.load_task("cifar10-bin", 15, 2, seed=3, skip=10)[0]
    assert not set(identify(first, ref)) & set(identify(fresh, ref))
    np.testing.assert_array_equal(fresh, data.load_task("cifar10-bin", 25, 2, seed=3)[0][10:])


def test_test_set_fixed_and_nested(cifar10_dir):
    a = data.load_task("cifar10-bin", 4, 20, seed=0)
    b = data.load_task("cifar10-bin", 4, 10, seed=5)
    assert not np.array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2][:10], b[2])
    np.testing.assert_array_equal(a[3][:10], b[3])


def test_pair_task_and_classes(cifar10_dir):
    root, ((x_tr, y_tr), _) = cifar10_dir
    x, y, xt, yt = data.load_task("cifar10-pair", 10, 4)  # airplane (+1) vs automobile (-1)
    ids = identify(x, reference(x_tr, y_tr, (0, 1), x_tr, 32))  # statistics of these classes only
    np.testing.assert_array_equal(y_tr[ids], np.where(y == 1, 0, 1))
    for classes in [((3,), (5,)), (3, 5)]:
        x, y, _, _ = data.load_task("cifar10-bin", 10, 4, classes=classes)
        ids = identify(x, reference(x_tr, y_tr, (3, 5), x_tr, 32))
        np.testing.assert_array_equal(y_tr[ids], np.where(y == 1, 3, 5))
    with pytest.raises(ValueError, match="only 10 balanced samples"):
        data.load_task("cifar10-pair", 11, 4)
    for bad in [((3,), (3, 5)), ((), (1,)), ((1,), (10,)), (1, 2, 3), "ab"]:
        with pytest.raises(ValueError, match="classes"):
            data.load_task("cifar10-bin", 4, 4, classes=bad)


def test_argument_errors_write_nothing(cifar10_dir):
    root, _ = cifar10_dir
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(ValueError, match="valid tasks: cifar10-bin, cifar10-pair, cifar5m-bin, svhn-parity"):
        data.load_task("cifar100-bin", 10, 10)
    with pytest.raises(ValueError, match=r"n_train \+ skip = 51 but .* only 50"):
        data.load_task("cifar10-bin", 50, 10, skip=1)
    with pytest.raises(ValueError, match="n_test = 21 but .* only 20"):
        data.load_task("cifar10-bin", 10, 21)
    with pytest.raises(ValueError, match="n_train must be an integer"):
        data.load_task("cifar10-bin", -1, 10)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_data_dir_argument_and_default(tmp_path, monkeypatch):
    root = tmp_path / "elsewhere"
    write_cifar10(root / "cifar-10-batches-py")
    assert data.load_task("cifar10-bin", 4, 4, data_dir=root)[0].shape == (4, 32, 32, 3)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.resolve_data_dir() == tmp_path / ".cache" / "ntk-limits" / "data"
    monkeypatch.setenv("NTK_DATA_DIR", str(root))
    assert data.resolve_data_dir() == root


def test_svhn_parity(tmp_path):
    raw = write_svhn(tmp_path)
    x, y, xt, yt = data.load_task("svhn-parity", 30, 20, image_size=16, data_dir=tmp_path)
    assert x.shape == (30, 16, 16, 3) and xt.shape == (20, 16, 16, 3) and y.sum() == 0
    (x_tr, d_tr), (x_te, d_te) = raw["train"], raw["test"]
    ids = identify(x, reference(x_tr, d_tr, range(10), x_tr, 16))
    np.testing.assert_array_equal(y, np.where(d_tr[ids] % 2 == 0, 1, -1))  # label 10 is digit 0: even
    ids = identify(xt, reference(x_tr, d_tr, range(10), x_te, 16))
    np.testing.assert_array_equal(yt, np.where(d_te[ids] % 2 == 0, 1, -1))


def _balanced(labels):
    return 2 * min(np.isin(labels, BIN[0]).sum(), np.isin(labels, BIN[1]).sum())


def test_cifar5m_lazy_parts(tmp_path):
    raw = write_cifar5m(tmp_path, parts=(0, 5))  # parts 1-4 absent (and not downloadable)
    in_part0 = _balanced(raw[0][1])
    x, y, xt, yt = data.load_task("cifar5m-bin", in_part0, 10, data_dir=tmp_path)
    assert x.shape == (in_part0, 32, 32, 3) and abs(y.sum()) <= 1 and xt.shape == (10, 32, 32, 3)
    assert isinstance(data._load_split("cifar5m", "part0", str(tmp_path))[0], np.memmap)
    ids = identify(x, reference(raw[0][0], raw[0][1], range(10), raw[0][0], 32))  # part 0 statistics
    np.testing.assert_array_equal(y, np.where(np.isin(raw[0][1][ids], BIN[0]), 1, -1))
    identify(xt, reference(raw[0][0], raw[0][1], range(10), raw[5][0], 32))  # tests come from part 5
    with pytest.raises(data.DataError, match=r"part1\.npz is missing(.|\n)*place the CIFAR-5m files"):
        data.load_task("cifar5m-bin", in_part0 + 1, 10, data_dir=tmp_path)


def test_cifar5m_across_parts(tmp_path):
    raw = write_cifar5m(tmp_path / "a")
    total = sum(_balanced(raw[k][1]) for k in range(5))
    x, y, _, _ = data.load_task("cifar5m-bin", total, 10, seed=1, data_dir=tmp_path / "a")
    assert np.abs(np.cumsum(y)).max() <= 1
    part0 = _balanced(raw[0][1])
    fresh = data.load_task("cifar5m-bin", 5, 10, seed=1, skip=part0 - 2, data_dir=tmp_path / "a")[0]
    np.testing.assert_array_equal(fresh, x[part0 - 2:part0 + 3])  # a slice spanning parts 0 and 1
    with pytest.raises(ValueError, match=f"only {total} balanced samples"):
        data.load_task("cifar5m-bin", total + 1, 10, data_dir=tmp_path / "a")
    write_cifar5m(tmp_path / "b", compressed=True)  # compressed copies load too (without memmap)
    again = data.load_task("cifar5m-bin", total, 10, seed=1, data_dir=tmp_path / "b")[0]
    np.testing.assert_array_equal(again, x)


# ----------------------------------------------------------------------------- files and downloads

def test_download_extract_and_progress(tmp_path, server, monkeypatch, capsys):
    tar, ((x_tr, y_tr), _) = cifar10_tarball(tmp_path)
    server.files["cifar-10-python.tar.gz"] = tar
    monkeypatch.setitem(downloads.SOURCES, "cifar-10-python.tar.gz", (f"{server.url}/cifar-10-python.tar.gz", md5(tar)))
    root = tmp_path / "cache"
    x, y, _, _ = data.load_task("cifar10-bin", 10, 4, data_dir=root)
    identify(x, reference(x_tr, y_tr, range(10), x_tr, 32))
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    assert "cifar-10-python.tar.gz" in capsys.readouterr().err  # the tqdm bar
    data._load_split.cache_clear()
    data.load_task("cifar10-bin", 10, 4, data_dir=root)  # from the extracted folder: no request
    assert len(server.requests) == 1


def test_download_resumes_a_partial_file(tmp_path, server):
    body = os.urandom(300_000)
    server.files["f.bin"] = body
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(body[:123_456])
    downloads.download(f"{server.url}/f.bin", dest, md5=md5(body), progress=False)
    assert server.requests == [("f.bin", "bytes=123456-")]
    assert dest.read_bytes() == body and not (tmp_path / "f.bin.part").exists()


def test_download_restarts_when_range_is_ignored(tmp_path, server):
    body = os.urandom(100_000)
    server.files["f.bin"], server.honour_range = body, False
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes")
    downloads.download(f"{server.url}/f.bin", tmp_path / "f.bin", md5=md5(body), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == body


def test_download_restarts_when_part_is_longer_than_the_file(tmp_path, server):
    body = os.urandom(1000)
    server.files["f.bin"] = body
    (tmp_path / "f.bin.part").write_bytes(os.urandom(2000))  # the server answers 416
    downloads.download(f"{server.url}/f.bin", tmp_path / "f.bin", md5=md5(body), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == body
    assert [r for _, r in server.requests] == ["bytes=2000-", None]


def test_interrupted_download_keeps_part_and_resumes(tmp_path, server):
    body = os.urandom(200_000)
    server.files["f.bin"], server.truncate = body, 1
    dest = tmp_path / "f.bin"
    with pytest.raises(data.DataError, match="interrupted"):
        downloads.download(f"{server.url}/f.bin", dest, md5=md5(body), progress=False)
    assert not dest.exists() and 0 < (tmp_path / "f.bin.part").stat().st_size < len(body)
    downloads.download(f"{server.url}/f.bin", dest, md5=md5(body), progress=False)
    assert dest.read_bytes() == body and server.requests[1][1] is not None


def test_checksum_mismatch_leaves_nothing(tmp_path, server, monkeypatch):
    tar, _ = cifar10_tarball(tmp_path)
    server.files["cifar-10-python.tar.gz"] = tar
    monkeypatch.setitem(downloads.SOURCES, "cifar-10-python.tar.gz", (f"{server.url}/cifar-10-python.tar.gz", "0" * 32))
    root = tmp_path / "cache"
    with pytest.raises(data.DataError, match="checksum mismatch"):
        data.load_task("cifar10-bin", 10, 4, data_dir=root)
    assert list(root.iterdir()) == []


def test_offline_missing_files_say_what_to_place_where(tmp_path):
    with pytest.raises(data.DataError) as e:
        data.load_task("cifar10-bin", 10, 4, data_dir=tmp_path)
    assert "could not download" in str(e.value)
    assert f"place cifar-10-python.tar.gz in {tmp_path}/ or the extracted cifar-10-batches-py/" in str(e.value)
    with pytest.raises(data.DataError, match="place train_32x32.mat and test_32x32.mat in"):
        data.load_task("svhn-parity", 10, 4, data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_corrupted_files(tmp_path, monkeypatch):
    tar, _ = cifar10_tarball(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "cifar-10-python.tar.gz").write_bytes(tar[:len(tar) // 2])  # no md5 known here
    with pytest.raises(data.DataError, match="corrupted or truncated"):
        data.load_task("cifar10-bin", 10, 4, data_dir=tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["cifar-10-python.tar.gz"]  # no temp dir

    monkeypatch.setitem(downloads.SOURCES, "cifar-10-python.tar.gz", ("http://127.0.0.1:9/x", md5(tar)))
    with pytest.raises(data.DataError, match="fails its md5 checksum"):  # a placed file is checked
        data.load_task("cifar10-bin", 10, 4, data_dir=tmp_path / "a")

    write_cifar10(tmp_path / "b" / "cifar-10-batches-py")
    batch = tmp_path / "b" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:5000])
    with pytest.raises(data.DataError, match="data_batch_3 is corrupted or truncated"):
        data.load_task("cifar10-bin", 10, 4, data_dir=tmp_path / "b")
    batch.unlink()
    with pytest.raises(data.DataError, match="incomplete .*data_batch_3"):
        data.load_task("cifar10-bin", 10, 4, data_dir=tmp_path / "b")

    write_svhn(tmp_path / "c")
    mat = tmp_path / "c" / "train_32x32.mat"
    mat.write_bytes(mat.read_bytes()[:20000])
    with pytest.raises(data.DataError, match="train_32x32.mat is corrupted or truncated"):
        data.load_task("svhn-parity", 10, 4, data_dir=tmp_path / "c")

    write_cifar5m(tmp_path / "d", parts=(0, 5))
    part = tmp_path / "d" / "cifar5m" / "part0.npz"
    part.write_bytes(part.read_bytes()[:50000])
    with pytest.raises(data.DataError, match="part0.npz is corrupted or truncated"):
        data.load_task("cifar5m-bin", 10, 4, data_dir=tmp_path / "d")


# ----------------------------------------------------------------------------- real data

def test_real_cifar10(real_data_dir):
    x, y, xt, yt = data.load_task("cifar10-bin", 500, 200, image_size=8, data_dir=real_data_dir)
    assert x.shape == (500, 8, 8, 3) and xt.shape == (200, 8, 8, 3)
    assert y.sum() == 0 and yt.sum() == 0 and np.abs(np.cumsum(y)).max() <= 1
    for z in (x, xt):  # standardized by the whole train split: a sample is close to 0 mean, 1 std
        assert np.isfinite(z).all()
        np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0, atol=0.15)
        np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1, atol=0.15)
    # real images: neighbouring pixels are strongly correlated (noise would give ~0)
    assert np.corrcoef(x[:, :, :-1].ravel(), x[:, :, 1:].ravel())[0, 1] > 0.5
