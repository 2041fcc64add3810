"""Kernels computed in tiles: spread over devices, shown by a progress bar, resumable on disk.

Both kernel drivers, the infinite NTK of ``ntk_utils.fast_ntk`` and the empirical NTK (or
neural-tangents' kernel) of ``ntk_utils.kernels.tiled_kernel``, compute an (n1, n2) matrix as
tiles of ``b1 x b2`` examples, in a fixed order, and assemble it here:

* Devices. Tiles go round robin to all local devices (:func:`on_devices`), each of which holds
  what the tiles read; a few tiles per device are in flight while finished ones are copied into
  the host matrix. A tile is the same computation on any device, so the kernel does not depend
  on the number of devices. Tile sizes may follow the devices' free memory (:func:`free_memory`,
  which GPUs report and CPUs do not).
* Progress. A tqdm bar over the entries (entries/s, time left) that also counts the tiles
  (:class:`Progress`).
* Disk. With a ``resume_dir`` the matrices are memory-mapped .npy files written tile by tile,
  with a record of the finished tiles (:class:`TileStore`): a killed computation called again
  with the same arguments continues after its last recorded tile and gives the same kernel.
* Assembly. :class:`TiledKernel` places each finished block, mirrors it for a symmetric kernel
  (K(x, x): only the tiles on and above the diagonal are computed), advances the bar and marks
  the store.
"""
import collections
import json
import pathlib
import time

import jax
import numpy as np

from ntk_utils.paths import atomic_write

# Tiles dispatched ahead, per device, of the one being copied back to the host.
QUEUE = 2
# Tiles (and other work items, e.g. Jacobian chunks) dispatched in this process, per device
# (str(device)), by on_devices: tests read it to see that every device got work.
TILES = collections.Counter()
# A TileStore records its finished tiles at most this often (seconds): a killed computation
# loses at most this much work (tests set 0: a record after every tile).
FLUSH_SECONDS = 30.0


def free_memory(devices):
    """The least free memory among ``devices`` in bytes (``bytes_limit - bytes_in_use`` of
    ``device.memory_stats()``, which GPUs report), or None where jax does not tell it (CPU)."""
    free = []
    for device in devices:
        try:
            stats = device.memory_stats()
        except Exception:  # a backend without memory statistics
            stats = None
        if not stats or "bytes_limit" not in stats:
            return None
        free.append(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return min(free)


def on_devices(fn, items, devices, ahead=QUEUE):
    """``fn(item, device)`` for each item, item k on ``devices[k % len(devices)]``; yields the
    results copied to the host (numpy pytrees), in order.

    ``fn`` puts its inputs on ``device`` (``jax.device_put``): a jitted function runs where its
    committed inputs are. jax dispatches asynchronously, so ``ahead`` items per device are
    dispatched before the oldest result is waited for: every device always has work queued,
    and the devices run concurrently. Each item is counted in :data:`TILES`.
    """
    pending = collections.deque()
    for k, item in enumerate(items):
        device = devices[k % len(devices)]
        pending.append(fn(item, device))
        TILES[str(device)] += 1
        if len(pending) > ahead * len(devices):
            yield jax.device_get(pending.popleft())
    while pending:
        yield jax.device_get(pending.popleft())


class Progress:
    """Progress of one kernel: a tqdm bar over its entries (so the rate is entries/s and the
    time left follows) that also shows the tiles done; silent when ``show`` is false."""

    def __init__(self, desc, n_tiles, n_entries, show, done_tiles=0, done_entries=0):
        self.n_tiles, self.done, self.bar = n_tiles, done_tiles, None
        if show:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=n_entries, initial=done_entries, desc=desc, unit=" entries", unit_scale=True,
                            leave=False, postfix=f"{done_tiles}/{n_tiles} tiles")

    def tile(self, entries):
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.done}/{self.n_tiles} tiles", refresh=False)
            self.bar.update(entries)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class TileStore:
    """A kernel written tile by tile into ``folder``, so that a killed computation resumes.

    ``folder/<name>.npy``: the ``shape`` matrices (one per name), memory-mapped
    (``np.lib.format.open_memmap``); ``folder/record.json``: ``{"plan": plan, "done": k}``: the
    first k tiles, in the computation's fixed order, are on disk. Tiles are collected in that
    order (:func:`on_devices`), so what is finished is always such a prefix. After a tile is
    written the caller calls :meth:`finished`; the arrays are flushed and then the record
    rewritten (atomically), at most every :data:`FLUSH_SECONDS` and on :meth:`close`.

    ``plan`` (a JSON-able dict: shape, tiling, dtype) must equal the recorded one for the
    arrays to be reused (``.done`` tiles skipped); otherwise the computation starts over.
    """

    def __init__(self, folder, plan, names, shape, dtype):
        self.folder, self.plan = pathlib.Path(folder), plan
        self.folder.mkdir(parents=True, exist_ok=True)
        paths = [self.folder / f"{name}.npy" for name in names]
        self.done, self.arrays = 0, None
        record = self.recorded(folder) or {}
        if record.get("plan") == plan:
            try:
                arrays = [np.lib.format.open_memmap(p, mode="r+") for p in paths]
                if all(a.shape == tuple(shape) and a.dtype == dtype for a in arrays):
                    self.arrays, self.done = arrays, int(record["done"])
            except (OSError, ValueError):  # missing or truncated arrays: start over
                pass
        if self.arrays is None:
            self.arrays = [np.lib.format.open_memmap(p, mode="w+", dtype=dtype, shape=tuple(shape)) for p in paths]
            self.flush()
        self._last = time.monotonic()

    @staticmethod
    def recorded(folder):
        """The record in ``folder`` (``{"plan": ..., "done": k}``), or None."""
        try:
            return json.loads((pathlib.Path(folder) / "record.json").read_text())
        except (OSError, ValueError):
            return None

    @classmethod
    def batch_size(cls, folder):
        """The tile size recorded in ``folder`` (None for no folder or no record): a resumed
        computation whose tile size was chosen automatically must tile as it did before."""
        if folder is None:
            return None
        return (cls.recorded(folder) or {}).get("plan", {}).get("batch_size")

    def finished(self, done):
        """The first ``done`` tiles are written into the arrays."""
        self.done = done
        if time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()

    def flush(self):
        for a in self.arrays:
            a.flush()
        with atomic_write(self.folder / "record.json") as f:
            json.dump({"plan": self.plan, "done": self.done}, f)
        self._last = time.monotonic()

    def close(self):
        """Record what is done; return in-memory copies of the arrays."""
        self.flush()
        return [np.array(a) for a in self.arrays]


class TiledKernel:
    """The (n1, n2) matrices ``names`` of one kernel, assembled on the host from tiles.

    Tile (i, j) covers rows ``i·b1 ...`` and columns ``j·b2 ...`` (``tile = (b1, b2)``; the last
    ones are cut at n1, n2); ``tiles`` lists them in the fixed order they are computed in. For a
    ``symmetric`` kernel the tiles are those with j >= i, each block also written mirrored.
    With ``resume_dir`` the matrices live in a :class:`TileStore` there (its plan: shape, dtype,
    ``batch_size``, symmetry, tile count and names) and ``done`` tiles are already in place.
    ``show``: the progress bar (:class:`Progress`); None = from ``min_tiles`` tiles on.
    """

    def __init__(self, names, shape, tile, tiles, *, symmetric, dtype, batch_size, desc, show, min_tiles,
                 resume_dir=None):
        self.shape, self.tile, self.tiles, self.symmetric = tuple(shape), tile, tiles, symmetric
        dtype = np.dtype(dtype)
        if resume_dir is None:
            self.store, self.arrays, self.done = None, [np.zeros(self.shape, dtype) for _ in names], 0
        else:
            plan = {"shape": list(self.shape), "dtype": dtype.name, "batch_size": batch_size,
                    "symmetric": bool(symmetric), "tiles": len(tiles), "names": list(names)}
            self.store = TileStore(resume_dir, plan, names, self.shape, dtype)
            self.arrays, self.done = self.store.arrays, self.store.done
        self.bar = Progress(desc, len(tiles), self.shape[0] * self.shape[1],
                            show if show is not None else len(tiles) >= min_tiles,
                            self.done, sum(self._entries(i, j) for i, j in tiles[:self.done]))

    def _entries(self, i, j):
        """Kernel entries that tile (i, j) fills: its block, twice when mirrored."""
        (b1, b2), (n1, n2) = self.tile, self.shape
        m = min(b1, n1 - i * b1) * min(b2, n2 - j * b2)
        return 2 * m if self.symmetric and i != j else m

    def put(self, i, j, blocks):
        """Tile (i, j), the next one in order, is computed: ``blocks`` (one ``(b1, b2)`` array
        per name, cut here to the matrix) go into place, mirrored for a symmetric kernel."""
        (b1, b2), (n1, n2) = self.tile, self.shape
        r1, r2 = i * b1, j * b2
        m1, m2 = min(b1, n1 - r1), min(b2, n2 - r2)
        for out, block in zip(self.arrays, blocks):
            block = np.asarray(block)[:m1, :m2]
            out[r1:r1 + m1, r2:r2 + m2] = block
            if self.symmetric and j != i:
                out[r2:r2 + m2, r1:r1 + m1] = block.T
        self.done += 1
        self.bar.tile(self._entries(i, j))
        if self.store is not None:
            self.store.finished(self.done)

    def fill(self, tiles, blocks):
        """:meth:`put` each of ``tiles`` with its blocks, as ``blocks`` (an iterator) yields them."""
        for (i, j), tile_blocks in zip(tiles, blocks):
            self.put(i, j, tile_blocks)

    def close(self):
        """The finished matrices, in memory."""
        self.bar.close()
        return self.arrays if self.store is None else self.store.close()
