"""The API reference is generated from docstrings: every public callable must have one, and the
examples written in them must run (doctest).

Public means: a name in the ``__all__`` of a public module, where the public modules are
``fastcnn``, each of its top-level modules and packages whose name has no leading underscore
(except the internal ``fastcnn.training``), and every module listed in a public module's
``__all__`` (so a new module such as ``fastcnn.regularizers`` or a new submodule exported by
``fastcnn.datasets`` is covered as soon as it exists).
For a public class, every public method and property defined in fastcnn counts too; an override
may inherit its docstring from the method it overrides (as ``inspect.getdoc`` and Sphinx do).
"""
import doctest
import importlib
import inspect
import os
import pkgutil
import types

import numpy as np
import pytest

import fastcnn


INTERNAL = {"fastcnn.training", "fastcnn.__main__"}


def public_modules():
    todo = [fastcnn]
    for info in pkgutil.iter_modules(fastcnn.__path__, "fastcnn."):
        if not info.name.split(".")[-1].startswith("_") and info.name not in INTERNAL:
            try:
                todo.append(importlib.import_module(info.name))
            except ImportError:  # an optional extra is missing: nothing to document here
                pass
    found = []
    while todo:
        module = todo.pop(0)
        if module in found:
            continue
        found.append(module)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if isinstance(value, types.ModuleType) and value.__name__.startswith("fastcnn."):
                todo.append(value)
    return found


def public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:  # no __all__: what the module itself defines without a leading underscore
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
    return list(names)


def _has_doc(cls, attr):
    """True when ``attr`` or the attribute it overrides in ``cls.__mro__`` has a docstring."""
    for klass in cls.__mro__:
        value = vars(klass).get(attr)
        if value is None:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if (getattr(value, "__doc__", None) or "").strip():
            return True
    return False


def undocumented():
    missing = []
    for module in public_modules():
        for name in public_names(module):
            value = getattr(module, name)
            if isinstance(value, types.ModuleType) or not callable(value):
                continue
            where = "%s.%s" % (module.__name__, name)
            if not (inspect.getdoc(value) or "").strip():
                missing.append(where)
            if not inspect.isclass(value):
                continue
            for attr in dir(value):
                if attr.startswith("_"):
                    continue
                owner = next((k for k in value.__mro__ if attr in vars(k)), None)
                if owner is None or not owner.__module__.startswith("fastcnn"):
                    continue
                raw = vars(owner)[attr]
                if isinstance(raw, (staticmethod, classmethod)):
                    raw = raw.__func__
                if not (inspect.isfunction(raw) or isinstance(raw, property)):
                    continue
                if not _has_doc(value, attr):
                    missing.append("%s.%s (defined in %s.%s)"
                                   % (where, attr, owner.__module__, owner.__qualname__))
    return sorted(set(missing))


def test_public_modules_found():
    names = {m.__name__ for m in public_modules()}
    for expected in ("fastcnn", "fastcnn.layers", "fastcnn.models", "fastcnn.optimizers",
                     "fastcnn.losses", "fastcnn.metrics", "fastcnn.callbacks", "fastcnn.utils",
                     "fastcnn.ops", "fastcnn.zoo", "fastcnn.datasets", "fastcnn.cli",
                     "fastcnn.datasets.cifar10", "fastcnn.plot", "fastcnn.profiler"):
        assert expected in names


def test_every_public_callable_has_a_docstring():
    missing = undocumented()
    assert not missing, "public callables without a docstring:\n  " + "\n  ".join(missing)


def test_the_check_sees_a_missing_docstring(monkeypatch):
    # the rule must catch a new undocumented public name (and its undocumented method)
    class Undocumented:
        def run(self):
            pass
    Undocumented.__module__ = "fastcnn.utils"
    monkeypatch.setattr(fastcnn.utils, "Undocumented", Undocumented, raising=False)
    monkeypatch.setattr(fastcnn.utils, "__all__", list(fastcnn.utils.__all__) + ["Undocumented"])
    missing = undocumented()
    assert "fastcnn.utils.Undocumented" in missing
    assert any(m.startswith("fastcnn.utils.Undocumented.run ") for m in missing)


def _package_modules():
    names = ["fastcnn"]
    for info in pkgutil.walk_packages(fastcnn.__path__, "fastcnn."):
        if info.name.endswith("__main__"):  # running it would start the command line
            continue
        names.append(info.name)
    return names


def _optional_import(name):
    try:
        return importlib.import_module(name)
    except ImportError as e:  # an optional extra (matplotlib, Pillow...) that is not installed
        pytest.skip("%s: %s" % (name, e))


@pytest.mark.parametrize("name", _package_modules())
def test_docstring_examples(name, tmp_path, monkeypatch):
    """The ``>>>`` examples in the package's docstrings run and print what they show."""
    module = _optional_import(name)
    monkeypatch.chdir(tmp_path)  # examples that save files write them here
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    old = fastcnn.get_num_threads()
    try:
        for test in finder.find(module, name, globs={"np": np, "fastcnn": fastcnn}):
            if test.examples:
                runner.run(test)
    finally:
        fastcnn.set_num_threads(old)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "%d docstring example(s) failed in %s" % (result.failed, name)


def test_some_docstring_examples_exist():
    finder = doctest.DocTestFinder(exclude_empty=True)
    count = 0
    for name in _package_modules():
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        count += sum(len(t.examples) for t in finder.find(module, name))
    assert count >= 10


def _screenshots_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "docs_screenshots", os.path.join(os.path.dirname(os.path.dirname(SCREENSHOTS)),
                                         "screenshots.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blank_check_tells_blank_from_rendered():
    shots = _screenshots_module()
    white = np.full((200, 300, 3), 255, np.uint8)
    assert shots.blank_reason(white) is not None
    speck = white.copy()
    speck[10:12, 10:12] = 0
    assert shots.blank_reason(speck) is not None
    page = white.copy()
    page[20:180:8, 20:280] = 30          # lines of "text"
    page[100:160, 150:250] = (200, 60, 60)  # a "figure"
    assert shots.blank_reason(page) is None


SCREENSHOTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "docs", "_build", "screenshots")


@pytest.mark.parametrize("page", ["home", "api", "gallery"])
def test_docs_screenshot_not_blank(page):
    """docs/screenshots.py wrote a rendered (not blank) screenshot of each page. Skipped until
    the site is built and shot, unless FASTCNN_REQUIRE_DOCS=1 (CI) makes a missing one fail."""
    path = os.path.join(SCREENSHOTS, page + ".png")
    if not os.path.exists(path):
        if os.environ.get("FASTCNN_REQUIRE_DOCS") == "1":
            pytest.fail("%s is missing: build the docs and run docs/screenshots.py" % path)
        pytest.skip("no docs screenshot (build the docs, then python docs/screenshots.py)")
    Image = pytest.importorskip("PIL.Image")
    shots = _screenshots_module()
    with Image.open(path) as im:
        problem = shots.blank_reason(np.asarray(im.convert("RGB")))
    assert problem is None, "%s: %s" % (path, problem)
