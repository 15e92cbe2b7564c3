"""What the file readers share: failing with the file's name and recognising HDF5."""

__all__ = ["fail", "names_file", "is_hdf5", "import_h5py"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 may place its superblock at 0, 512, 1024, 2048 ... (after a user block)
_SIGNATURE_OFFSETS = (0, 512, 1024, 2048, 4096)


def fail(path, what, cause=None):
    """Raise ValueError("Cannot load <path>: <what>"), chained to ``cause`` if given."""
    err = ValueError("Cannot load %s: %s" % (path, what))
    if cause is not None:
        raise err from cause
    raise err


def names_file(error):
    """Whether ``error`` came from :func:`fail` (h5py raises bare ValueErrors too)."""
    return str(error).startswith("Cannot load ")


def is_hdf5(filepath):
    """Whether ``filepath`` is an HDF5 file (by its signature; the file is not parsed).

    Args:
        filepath: a path.

    Returns:
        bool: False for a missing file, a directory or any other content.
    """
    try:
        with open(filepath, "rb") as f:
            for offset in _SIGNATURE_OFFSETS:
                f.seek(offset)
                if f.read(8) == _HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def import_h5py(path):
    """h5py, or a ValueError naming ``path`` when it is not installed."""
    try:
        import h5py
    except ImportError:
        raise ValueError("Cannot load %s: it is an HDF5 file and reading it needs h5py "
                         "(pip install h5py)" % path) from None
    return h5py
