"""Build fastcnn's C/OpenMP kernels and their Cython binding into ``fastcnn._ext``.

Environment switches (read at build time):

* ``FASTCNN_REQUIRE_OPENMP=1``  fail instead of building a serial extension.
* ``FASTCNN_NATIVE=1``          add ``-march=native`` (the wheel then only runs on this CPU kind).
* ``FASTCNN_SANITIZE=address,undefined``  build with those sanitizers (``-O1 -g``).
* ``FASTCNN_DEBUG=1``           ``-O0 -g`` for stepping through kernels.
* ``FASTCNN_DISABLE_OPENMP=1``  build serially on purpose (tests the no-OpenMP build).

OpenMP is detected the way scikit-learn does it: compile *and run* a tiny OpenMP
program with the very compiler setuptools will use.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d", n > 0 ? omp_get_max_threads() : 0);
        return n > 0 ? 0 : 1;
    }
    """
)


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def openmp_flags(compiler):
    """Return (compile_args, link_args) for OpenMP, or None if this compiler has none."""
    ctype = compiler.compiler_type
    if ctype == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        # Apple clang has no -fopenmp driver flag; it works with libomp via the preprocessor.
        candidates = [
            (["-Xpreprocessor", "-fopenmp"], ["-lomp"]),
            (["-fopenmp"], ["-fopenmp"]),
        ]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]

    for cflags, ldflags in candidates:
        tmp = tempfile.mkdtemp(prefix="fastcnn-omp-")
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(OPENMP_PROBE)
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            exe = os.path.join(tmp, "probe")
            compiler.link_executable(objs, exe, extra_postargs=ldflags)
            out = subprocess.run([exe], capture_output=True, timeout=60)
            if out.returncode == 0:
                return cflags, ldflags
        except Exception:  # any failure means: this flag set does not give working OpenMP
            pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return None


class BuildExt(build_ext):
    def build_extensions(self):
        compiler = self.compiler
        ctype = compiler.compiler_type
        flags = None if _env_flag("FASTCNN_DISABLE_OPENMP") else openmp_flags(compiler)
        if flags is None:
            msg = (
                "fastcnn: no working OpenMP found for compiler %r; building a SERIAL "
                "extension (every kernel runs on one thread). Install libgomp/libomp or set "
                "CC to an OpenMP-capable compiler." % (ctype,)
            )
            if _env_flag("FASTCNN_REQUIRE_OPENMP"):
                raise RuntimeError(msg + " (FASTCNN_REQUIRE_OPENMP=1 makes this an error)")
            warnings.warn(msg)
            sys.stderr.write("\n" + "!" * 78 + "\n" + msg + "\n" + "!" * 78 + "\n\n")
            omp_c, omp_l = [], []
        else:
            omp_c, omp_l = flags

        if ctype == "msvc":
            opt = ["/O2", "/fp:precise"]
        else:
            opt = ["-O3", "-std=c99", "-fno-math-errno", "-ffp-contract=off",
                   "-Wall", "-Wno-unused-function", "-Wno-unknown-pragmas"]
            if _env_flag("FASTCNN_DEBUG"):
                opt = [o for o in opt if o != "-O3"] + ["-O0", "-g"]
            if _env_flag("FASTCNN_NATIVE"):
                opt.append("-march=native")
            sanitize = os.environ.get("FASTCNN_SANITIZE", "").strip()
            if sanitize:
                opt = [o for o in opt if o != "-O3"] + [
                    "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=" + sanitize,
                    "-fno-sanitize-recover=all"]
                omp_l = omp_l + ["-fsanitize=" + sanitize]

        cc = compiler.compiler[0] if getattr(compiler, "compiler", None) else ctype
        config = {
            "compiler": os.path.basename(str(cc)),
            "openmp": bool(flags),
            "openmp_flags": " ".join(omp_c),
            "cflags": " ".join(opt),
        }
        # The package's copy goes where the extension goes (in place or build/lib), since
        # build_py has already copied the sources by the time build_ext runs.
        text = "# Written by setup.py at build time.\nBUILD_CONFIG = %r\n" % (config,)
        ext_dir = os.path.dirname(self.get_ext_fullpath("fastcnn._ext"))
        for d in {os.path.join(HERE, "fastcnn"), ext_dir}:
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "_build_config.py"), "w") as f:
                f.write(text)

        for ext in self.extensions:
            ext.extra_compile_args = opt + omp_c + ext.extra_compile_args
            ext.extra_link_args = omp_l + ext.extra_link_args
            if flags is not None:
                ext.define_macros.append(("FASTCNN_OPENMP", "1"))
        super().build_extensions()


def extensions():
    import numpy as np
    from Cython.Build import cythonize

    csources = sorted(glob.glob(os.path.join("csrc", "*.c")))
    ext = Extension(
        "fastcnn._ext",
        sources=[os.path.join("fastcnn", "_ext.pyx")] + csources,
        include_dirs=["csrc", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=sorted(glob.glob(os.path.join("csrc", "*.h"))
                       + glob.glob(os.path.join("fastcnn", "*.pxi"))),
    )
    return cythonize(
        [ext],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
        },
        include_path=["fastcnn"],
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
