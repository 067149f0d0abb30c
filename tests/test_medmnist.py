"""load_medmnist and fetch_pneumoniamnist (against a local HTTP server only)."""

import hashlib
import io
import os
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

import cxrlearn.datasets._medmnist as medmnist
from cxrlearn.datasets import fetch_pneumoniamnist, get_data_home, load_medmnist


def make_npz(path=None, size=28, n=(6, 3, 4), channels=None, multilabel=False):
    """A MedMNIST-style file; returns its bytes (and writes it if ``path``)."""
    rng = np.random.default_rng(size)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        if count is None:
            continue
        shape = (count, size, size) + ((channels,) if channels else ())
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        width = 14 if multilabel else 1
        arrays[f"{split}_labels"] = rng.integers(0, 2, (count, width), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    data = buf.getvalue()
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(data)
    return data, arrays


# ------------------------------------------------------------ load_medmnist
@pytest.mark.parametrize("size", [28, 64])
def test_load_medmnist_grayscale(tmp_path, size):
    path = tmp_path / "p.npz"
    _, arrays = make_npz(path, size=size)
    for split in ("train", "val", "test"):
        X, y = load_medmnist(path, split=split)
        n = arrays[f"{split}_images"].shape[0]
        assert X.shape == (n, size, size, 1) and X.dtype == np.float32
        np.testing.assert_allclose(X[..., 0] * 255, arrays[f"{split}_images"], atol=1e-4)
        assert y.shape == (n,) and y.dtype == np.int64
        np.testing.assert_array_equal(y, arrays[f"{split}_labels"].ravel())


def test_load_medmnist_colour_and_multilabel(tmp_path):
    make_npz(tmp_path / "c.npz", channels=3)
    X, _ = load_medmnist(tmp_path / "c.npz", split="val")
    assert X.shape == (3, 28, 28, 3)
    make_npz(tmp_path / "m.npz", multilabel=True)
    _, y = load_medmnist(str(tmp_path / "m.npz"))
    assert y.shape == (6, 14)


def test_load_medmnist_missing_split_lists_available(tmp_path):
    make_npz(tmp_path / "tv.npz", n=(6, 3, None))
    with pytest.raises(ValueError, match=r"'test'.*available splits: \['train', 'val'\]"):
        load_medmnist(tmp_path / "tv.npz", split="test")


def test_load_medmnist_rejects_3d_volumes(tmp_path):
    np.savez(
        tmp_path / "v.npz",
        train_images=np.zeros((2, 28, 28, 28), np.uint8),
        train_labels=np.zeros((2, 1), np.uint8),
    )
    with pytest.raises(ValueError, match="2-D images"):
        load_medmnist(tmp_path / "v.npz")


def test_real_pneumoniamnist_file(data_dir):
    path = data_dir / "pneumoniamnist" / "pneumoniamnist_trainval.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    X, y = load_medmnist(path, split="train")
    assert X.shape == (4708, 28, 28, 1) and 0 <= X.min() and X.max() <= 1
    assert set(np.unique(y)) == {0, 1} and y.mean() > 0.5  # mostly pneumonia
    assert load_medmnist(path, split="val")[0].shape == (524, 28, 28, 1)
    with pytest.raises(ValueError, match="available splits"):
        load_medmnist(path, split="test")


# ----------------------------------------------------- fetch_pneumoniamnist
class _Server:
    """A local HTTP server with a configurable body, counting requests."""

    def __init__(self):
        self.body = b""
        self.declared_length = None
        self.status = 200
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if server.status != 200:
                    self.send_error(server.status)
                    return
                self.send_response(200)
                length = server.declared_length or len(server.body)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = _Server()
    yield srv
    srv.close()


def test_fetch_downloads_verifies_and_caches(tmp_path, server):
    data, arrays = make_npz()
    server.body = data
    md5 = hashlib.md5(data).hexdigest()
    path = fetch_pneumoniamnist(28, data_home=tmp_path, url=server.url + "/p.npz", md5=md5)
    assert path == str(tmp_path / "pneumoniamnist.npz")
    assert open(path, "rb").read() == data
    assert server.requests == ["/p.npz"]
    # a second call reuses the cached file without touching the network
    again = fetch_pneumoniamnist(28, data_home=tmp_path, url=server.url + "/p.npz", md5=md5)
    assert again == path and len(server.requests) == 1
    X, y = load_medmnist(path, split="val")
    np.testing.assert_array_equal(y, arrays["val_labels"].ravel())
    assert os.listdir(tmp_path) == ["pneumoniamnist.npz"]


@pytest.mark.parametrize(
    "size, name", [(64, "pneumoniamnist_64.npz"), (224, "pneumoniamnist_224.npz")]
)
def test_fetch_size_to_filename(tmp_path, server, size, name):
    data, _ = make_npz(size=size, n=(2, 1, 1))
    server.body = data
    path = fetch_pneumoniamnist(
        size, data_home=tmp_path, url=server.url, md5=hashlib.md5(data).hexdigest()
    )
    assert os.path.basename(path) == name
    assert load_medmnist(path)[0].shape == (2, size, size, 1)


def test_fetch_refuses_a_corrupt_download(tmp_path, server):
    good, _ = make_npz()
    server.body = good[:-10] + b"0123456789"  # same length, wrong bytes
    with pytest.raises(OSError, match="MD5"):
        fetch_pneumoniamnist(
            28, data_home=tmp_path, url=server.url, md5=hashlib.md5(good).hexdigest()
        )
    assert os.listdir(tmp_path) == []  # nothing cached, no partial file


def test_fetch_refuses_an_incomplete_download(tmp_path, server):
    good, _ = make_npz()
    server.body = good[:100]
    server.declared_length = len(good)  # the connection ends early
    with pytest.raises(OSError, match="download"):
        fetch_pneumoniamnist(
            28, data_home=tmp_path, url=server.url, md5=hashlib.md5(good).hexdigest()
        )
    assert os.listdir(tmp_path) == []


def test_fetch_http_error(tmp_path, server):
    server.status = 404
    with pytest.raises(OSError, match="could not download"):
        fetch_pneumoniamnist(28, data_home=tmp_path, url=server.url, md5="0" * 32)
    assert os.listdir(tmp_path) == []


def test_fetch_official_url_and_no_download(tmp_path, monkeypatch):
    seen = []

    def offline(url, timeout):
        seen.append(url)
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(medmnist.urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="download_if_missing=False"):
        fetch_pneumoniamnist(128, data_home=tmp_path, download_if_missing=False)
    assert seen == []
    with pytest.raises(OSError, match="offline"):
        fetch_pneumoniamnist(128, data_home=tmp_path)
    assert seen == ["https://zenodo.org/records/10519652/files/pneumoniamnist_128.npz?download=1"]
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="size"):
        fetch_pneumoniamnist(32, data_home=tmp_path)


def test_data_home_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRLEARN_DATA_HOME", str(tmp_path / "home"))
    assert get_data_home() == str(tmp_path / "home")
    assert os.path.isdir(tmp_path / "home")
    data, _ = make_npz()
    (tmp_path / "home" / "pneumoniamnist.npz").write_bytes(data)
    assert fetch_pneumoniamnist(download_if_missing=False) == str(
        tmp_path / "home" / "pneumoniamnist.npz"
    )


def test_data_home_default_and_user_folder(tmp_path, monkeypatch):
    """cxrlearn's own default; ~ expanded and folder made by scikit-learn's."""
    monkeypatch.delenv("CXRLEARN_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))  # Windows
    expected = os.path.join(str(tmp_path), ".cxrlearn_data")
    assert get_data_home() == expected and os.path.isdir(expected)
    nested = os.path.join("~", "cache", "cxr")
    assert get_data_home(nested) == os.path.join(str(tmp_path), "cache", "cxr")
    assert os.path.isdir(tmp_path / "cache" / "cxr")
    folder = get_data_home(tmp_path / "as_path")  # os.PathLike
    assert isinstance(folder, str) and os.path.isdir(folder)


@pytest.mark.parametrize(
    "call",
    [
        lambda home: get_data_home(42),
        lambda home: fetch_pneumoniamnist(True, data_home=home),
        lambda home: fetch_pneumoniamnist(28, data_home=home, timeout=0),
        lambda home: fetch_pneumoniamnist(28, data_home=home, download_if_missing="no"),
        lambda home: fetch_pneumoniamnist(28, data_home=home, url=b"http://x"),
        lambda home: load_medmnist(None),
        lambda home: load_medmnist(os.path.join(home, "p.npz"), split=0),
    ],
)
def test_parameters_are_validated(tmp_path, call):
    with pytest.raises(InvalidParameterError):
        call(str(tmp_path))
    assert os.listdir(tmp_path) == []  # nothing fetched or made
