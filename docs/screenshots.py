"""Screenshots of the built documentation in a real headless browser, and a blankness check.

    python docs/screenshots.py [--html docs/_build/html] [--out docs/_build/screenshots]

Opens the home page, one API page (``api/layers.html``) and one gallery page
(``auto_examples/cifar10_tutorial.html``, a tall shot that reaches its first figures) in Debian's
``chromium`` (``apt-get install chromium``; ``$CHROMIUM`` names another binary) and writes
``home.png``, ``api.png`` and ``gallery.png``. Each screenshot must not be blank: a page that
failed to render (a white or single-colour image) makes the script exit with status 1.
``tests/test_docs.py`` applies the same check to the files.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# (name, page, window size): headless Chromium shoots from the top of the page, so the
# gallery shot is tall enough to include the first figures
PAGES = [("home", "index.html", (1280, 1000)),
         ("api", "api/layers.html", (1280, 1000)),
         ("gallery", "auto_examples/cifar10_tutorial.html", (1280, 4200))]


def blank_reason(rgb):
    """Why an RGB screenshot (H, W, 3 uint8 array) looks blank, or None if it does not.

    Blank means: almost one colour (pixel standard deviation below 8 levels), or fewer than
    1% of the pixels differ from the most common colour (a white page with a speck).
    """
    import numpy as np
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        return "not an RGB image (shape %s)" % (rgb.shape,)
    if float(rgb.std()) < 8.0:
        return "nearly uniform (pixel standard deviation %.2f)" % float(rgb.std())
    flat = rgb.reshape(-1, 3)
    colours, counts = np.unique(flat[::7], axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    differ = float(np.any(flat != background, axis=1).mean())
    if differ < 0.01:
        return "%.3f%% of the pixels differ from the background" % (100 * differ)
    return None


def find_chromium():
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise SystemExit("screenshots: no chromium found (apt-get install -y chromium, or set "
                     "CHROMIUM to the browser's path)")


def shoot(browser, url, png, size=(1280, 1000), timeout=120):
    with tempfile.TemporaryDirectory(prefix="fastcnn-chromium-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=" + profile,
               "--virtual-time-budget=5000", "--window-size=%d,%d" % size,
               "--screenshot=" + png, url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not os.path.exists(png):
        raise SystemExit("screenshots: chromium failed on %s (status %d):\n%s"
                         % (url, proc.returncode, proc.stderr[-2000:]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--html", default=os.path.join(HERE, "_build", "html"))
    p.add_argument("--out", default=os.path.join(HERE, "_build", "screenshots"))
    args = p.parse_args(argv)
    from PIL import Image
    import numpy as np

    browser = find_chromium()
    os.makedirs(args.out, exist_ok=True)
    failures = []
    for name, page, size in PAGES:
        path = os.path.join(args.html, page)
        if not os.path.exists(path):
            raise SystemExit("screenshots: %s does not exist: build the docs first "
                             "(python -m sphinx -W -n docs docs/_build/html)" % path)
        png = os.path.join(args.out, name + ".png")
        shoot(browser, "file://" + os.path.abspath(path), png, size=size)
        with Image.open(png) as im:
            problem = blank_reason(np.asarray(im.convert("RGB")))
        print("%-8s %s -> %s: %s" % (name, page, png, problem or "rendered"))
        if problem:
            failures.append("%s: %s" % (png, problem))
    if failures:
        print("blank screenshots:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
