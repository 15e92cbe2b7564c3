"""Shared machinery of the dataset loaders: errors, search places, parsed-array cache, download.

Where things live:

* ``$FASTCNN_HOME/datasets`` (default ``~/.fastcnn/datasets``): where fastcnn looks first
  (after an explicit ``path``) and where it downloads to.
* ``$FASTCNN_HOME/datasets/cache``: parsed arrays as uncompressed ``.npz`` files, so a second
  load only reads one file. Each records the size and mtime of the files it was parsed from
  and is ignored once they change. ``FASTCNN_DATASET_CACHE=0`` turns the cache off.
* ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``): Keras' download cache, read only.
"""
import hashlib
import json
import os
import sys
import time
import urllib.request
import zipfile

import numpy as np

from .._fileio import atomic_write

__all__ = ["DatasetError", "DatasetNotFoundError", "UnsafePickleError", "get_data_home",
           "keras_datasets_dir", "download", "cached_arrays"]

# Bump when a parser changes what it returns, so caches written by older code are ignored.
CACHE_FORMAT = 1


class DatasetError(ValueError):
    """A dataset file is corrupt, truncated, of the wrong format or fails its checksum."""


class UnsafePickleError(DatasetError):
    """A pickle asked for a global that no official dataset file contains (nothing was run)."""


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is in none of the places searched, and could not be downloaded."""


def fastcnn_home():
    return os.path.abspath(os.path.expanduser(
        os.environ.get("FASTCNN_HOME") or os.path.join("~", ".fastcnn")))


def get_data_home():
    """``$FASTCNN_HOME/datasets``: where fastcnn looks for and downloads datasets."""
    return os.path.join(fastcnn_home(), "datasets")


def keras_datasets_dir():
    """Keras' dataset cache: ``$KERAS_HOME/datasets``, default ``~/.keras/datasets``."""
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return os.path.abspath(os.path.join(os.path.expanduser(home), "datasets"))


def expand(path):
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


# ----------------------------------------------------------------------------------- cache

def _cache_enabled():
    return os.environ.get("FASTCNN_DATASET_CACHE", "1").strip().lower() not in (
        "0", "false", "no", "off")


def _signature(key, files):
    """What a cache entry depends on: the source's identity and each file's size and mtime."""
    stats = []
    for f in files:
        st = os.stat(f)
        stats.append([os.path.abspath(f), st.st_size, st.st_mtime_ns])
    return json.dumps({"format": CACHE_FORMAT, "key": key, "files": stats}, sort_keys=True)


def _cache_path(dataset, key):
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
    return os.path.join(get_data_home(), "cache", "%s-%s.npz" % (dataset, digest))


def _read_cache(path, signature, names):
    """The cached arrays if ``path`` holds exactly ``names`` for this signature, else None."""
    try:
        # our own handle: np.load leaks its file when the zip directory is damaged
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            if str(npz["__signature__"]) != signature:
                return None
            return {name: npz[name] for name in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # missing, unreadable or damaged cache: parse the source again


def _write_cache(path, signature, arrays):
    try:
        with atomic_write(path) as f:
            np.savez(f, __signature__=np.array(signature), **arrays)
    except OSError:
        pass  # read-only or full cache directory: caching is only an optimisation


def cached_arrays(dataset, key, files, parse, names, check):
    """Return ``parse()``'s dict of arrays, from the cache when it is still valid.

    ``key`` names the source (kind and absolute path), ``files`` are the files it is read
    from, ``names`` the array names ``parse`` returns and ``check(arrays)`` says whether
    cached arrays have the shapes/dtypes ``parse`` gives (a damaged cache is never returned).
    """
    if not _cache_enabled():
        return parse()
    signature = _signature(key, files)
    path = _cache_path(dataset, key)
    arrays = _read_cache(path, signature, names)
    if arrays is not None and check(arrays):
        return arrays
    arrays = parse()
    _write_cache(path, signature, arrays)
    return arrays


# -------------------------------------------------------------------------------- download

class _Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, name, total, stream=None):
        self.name, self.total, self.done = name, total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.last = 0.0

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.1 or (self.total and self.done >= self.total):
            self.last = now
            self.draw()

    def draw(self):
        mb = self.done / 1e6
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(30 * frac)
            line = "\rDownloading %s [%-30s] %5.1f%% %.1f/%.1f MB" % (
                self.name, bar, 100 * frac, mb, self.total / 1e6)
        else:
            line = "\rDownloading %s %.1f MB" % (self.name, mb)
        self.stream.write(line)
        self.stream.flush()

    def close(self):
        self.draw()
        self.stream.write("\n")
        self.stream.flush()


def download(url, dest, md5=None, sha256=None, progress=True, timeout=60):
    """Download ``url`` (HTTPS only) to ``dest``, checking its MD5 or SHA-256 checksum.

    The bytes go to a temporary file beside ``dest`` that is renamed over ``dest`` only when
    the download is complete and the checksum matches; on any failure nothing is left behind
    and the error propagates (``urllib.error.URLError``/``OSError`` for network failures,
    :class:`DatasetError` for a short read or a checksum mismatch).
    """
    if not url.startswith("https://"):
        raise ValueError("download: only https:// URLs are fetched, got %r" % (url,))
    if (md5 is None) == (sha256 is None):
        raise ValueError("download: give exactly one of md5= or sha256=")
    algo, expected = ("md5", md5) if md5 is not None else ("sha256", sha256)
    digest = hashlib.new(algo, usedforsecurity=False) if algo == "md5" else hashlib.sha256()
    name = os.path.basename(dest)
    request = urllib.request.Request(url, headers={"User-Agent": "fastcnn-datasets"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)
        bar = _Progress(name, total) if progress else None
        done = 0
        try:
            with atomic_write(dest) as f:
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    digest.update(chunk)
                    f.write(chunk)
                    done += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                if total and done != total:
                    raise DatasetError("download of %s stopped after %d of %d bytes; nothing "
                                       "was saved" % (url, done, total))
                got = digest.hexdigest()
                if got != expected.lower():
                    raise DatasetError(
                        "download of %s has %s %s, expected %s (corrupted or not the official "
                        "file); nothing was saved to %s" % (url, algo, got, expected, dest))
        finally:
            if bar is not None:
                bar.close()
    return dest


def not_found_message(dataset, looked, names, fix, download_error=None):
    """One message: every place searched, what was looked for, the download failure, the fix."""
    lines = ["%s not found. Looked in:" % dataset]
    lines += ["  - %s" % place for place in looked]
    lines.append("for any of: %s." % ", ".join(names))
    if download_error is not None:
        lines.append("Downloading it failed: %s" % (download_error,))
    lines.append(fix)
    return "\n".join(lines)
