"""The first CIFAR-10 load (parsing the tarball, writing the cache) peaks at about one copy of
the data above the interpreter, not three (it was 552 MB for 180 MB of images)."""
import io
import os
import pickle
import subprocess
import sys
import tarfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _full_size_tarball(path):
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name in ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]:
            data = np.zeros((10000, 3072), np.uint8)
            data[:, :16] = rng.integers(0, 256, (10000, 16), dtype=np.uint8)
            raw = pickle.dumps({b"data": data, b"labels": [i % 10 for i in range(10000)]},
                               protocol=2)
            info = tarfile.TarInfo("cifar-10-batches-py/" + name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


_PROBE = """
import resource, sys
from fastcnn.datasets import cifar10
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
(x, y), (xt, yt) = cifar10.load_data(sys.argv[1])
assert x.shape == (50000, 32, 32, 3) and xt.shape == (10000, 32, 32, 3)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB on Linux")
def test_first_load_of_the_tarball_peaks_near_one_copy(tmp_path):
    tarball = str(tmp_path / "cifar-10-python.tar.gz")
    _full_size_tarball(tarball)
    env = dict(os.environ, FASTCNN_HOME=str(tmp_path / "home"), PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", _PROBE, tarball], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    growth_mb = int(out.stdout.split()[-1])
    # 184 MB of images; one pickled batch (31 MB) in flight while it is parsed
    assert growth_mb < 300, growth_mb
