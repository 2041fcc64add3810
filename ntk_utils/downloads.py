"""The dataset files of the data cache: official sources, checked and resumable downloads.

    path = fetch_file("train_32x32.mat", root, hint)   # root / name, downloaded if missing, md5 checked
    folder = cifar10_folder(root)                      # root / cifar-10-batches-py, extracted if missing

Files (relative to the data cache; SOURCES gives their official URLs, tests point it at a local server):

    cifar-10-batches-py/        extracted from cifar-10-python.tar.gz (used as is when complete)
    train_32x32.mat, test_32x32.mat                 SVHN
    cifar5m/part0.npz ... cifar5m/part5.npz         CIFAR-5m

Downloads go to ``<file>.part`` (resumed with an HTTP Range request on the next run) and get
their final name only after the checksum passed, so a file under its final name is complete.
Downloading the same file from two processes at once is not supported: fetch first, e.g.
``python -m ntk_utils.data cifar10``. Imports only tqdm and the standard library.
"""
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

# file (relative to the data cache) -> (official URL, md5 or None).
# The CIFAR-5m authors publish no checksums. Their README names gs://gresearch/cifar5m/part{i}.npz;
# storage.googleapis.com is the anonymous HTTP endpoint of that bucket. A truncated part is still
# caught: by the Content-Length check when downloading, and by the zip reader when opening it.
SOURCES = {
    "cifar-10-python.tar.gz": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                               "c58f30108f718f92721af3b95e74349a"),
    "train_32x32.mat": ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
                        "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test_32x32.mat": ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
                       "eb5a983be6a315427106f1b164d9cef3"),
    **{f"cifar5m/part{k}.npz": (f"https://storage.googleapis.com/gresearch/cifar5m/part{k}.npz", None)
       for k in range(6)},
}

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_BATCHES = [f"data_batch_{k}" for k in range(1, 6)]


class DataError(RuntimeError):
    """A dataset file is missing (and could not be downloaded), corrupted, or fails its checksum."""


def md5_of(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def download(url, dest, md5=None, progress=True, timeout=60):
    """Download url to dest (a path) and return dest as a Path; a no-op when dest exists.

    Bytes go to dest + ".part"; an existing .part (an interrupted run) is resumed with an HTTP
    Range request, or restarted when the server answers with the whole file. The checksum is
    checked before the atomic rename to dest: on a mismatch the .part is deleted. An interrupted
    transfer raises DataError and keeps the .part for the next run to resume.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part is as long as the file, or longer: start over
            part.unlink()
            return download(url, dest, md5, progress, timeout)
        raise DataError(f"could not download {url} ({e})") from None
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"could not download {url} ({getattr(e, 'reason', e)})") from None

    with response:
        resumed = (have and response.status == 206
                   and response.headers.get("Content-Range", "").startswith(f"bytes {have}-"))
        if not resumed:
            have = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        try:
            with open(part, "ab" if resumed else "wb") as f, \
                    tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=dest.name, disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            raise DataError(f"download of {url} was interrupted ({e!r}); run again to resume {part}") from None

    size = part.stat().st_size
    if total is not None and size != total:
        raise DataError(f"download of {url} was interrupted ({size} of {total} bytes); run again to resume {part}")
    if md5 is not None:
        got = md5_of(part)
        if got != md5:
            part.unlink()
            raise DataError(f"checksum mismatch for {url}: md5 {got}, expected {md5}; deleted the download")
    os.replace(part, dest)
    return dest


def fetch_file(name, root, hint):
    """root / name, downloaded from SOURCES[name] if missing; a file already there is checked
    against its md5 (when SOURCES has one). hint says what to place where, for offline use."""
    path = root / name
    url, md5 = SOURCES[name]
    if not path.is_file():
        try:
            download(url, path, md5)
        except DataError as e:
            raise DataError(f"{path} is missing and {e}.\n{hint}") from None
    elif md5 is not None and md5_of(path) != md5:
        raise DataError(f"{path} fails its md5 checksum (expected {md5}): a corrupted or truncated file. "
                        f"Delete it and run again to download it.")
    return path


def cifar10_folder(root):
    """root / cifar-10-batches-py, extracted from the official tarball (fetched if needed)."""
    folder = root / CIFAR10_DIR
    needed = CIFAR10_BATCHES + ["test_batch"]
    if all((folder / f).is_file() for f in needed):
        return folder
    if folder.exists():
        missing = [f for f in needed if not (folder / f).is_file()]
        raise DataError(f"{folder} is incomplete (missing {', '.join(missing)}); delete it and run again")
    tar = fetch_file("cifar-10-python.tar.gz", root,
                 f"To work offline, place cifar-10-python.tar.gz in {root}/ "
                 f"or the extracted {CIFAR10_DIR}/ folder there.")
    # Extract next to the destination and rename: a reader never sees a half-extracted folder.
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        try:
            with tarfile.open(tar) as t:
                t.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"{tar} is corrupted or truncated ({e}); delete it and run again") from None
        if not all((tmp / CIFAR10_DIR / f).is_file() for f in needed):
            raise DataError(f"{tar} does not hold the official {CIFAR10_DIR}/ files; delete it and run again")
        if not folder.exists():  # else another process extracted it meanwhile
            os.replace(tmp / CIFAR10_DIR, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
