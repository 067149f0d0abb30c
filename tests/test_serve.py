"""cxrlearn.serve and ``cxrlearn serve``: the API, its limits, the page in a browser.

Fast tier: a small network on 32 px synthetic X-rays, trained once for the
module; API tests use FastAPI's test client, the last tests the real
server (``cxrlearn serve`` in a subprocess on 127.0.0.1), one of them
driving headless Chromium through Selenium.
"""

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline

from conftest import small_cnn
from cxrlearn import ImageLoader, PneumoniaCNN
from cxrlearn.datasets import load_image_directory, write_synthetic_xray_directory
from cxrlearn.io import save_model

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("python_multipart", reason="the serve extra is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from cxrlearn.serve import ServedModel, create_app, decode_upload  # noqa: E402
from cxrlearn.serve._app import CONTENT_SECURITY_POLICY  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_xrays")
    write_synthetic_xray_directory(root, 48, SIZE, random_state=0)
    return root


@pytest.fixture(scope="module")
def data(folder):
    paths, labels = load_image_directory(folder)
    return np.asarray(paths, dtype=object), np.asarray(labels)


@pytest.fixture(scope="module")
def pipe(data):
    return Pipeline([
        ("loader", ImageLoader(image_size=SIZE, color_mode="grayscale", intensity="equalize")),
        ("cnn", small_cnn(epochs=2)),
    ]).fit(*data)


@pytest.fixture(scope="module")
def model_file(pipe, tmp_path_factory):
    path = tmp_path_factory.mktemp("serve_model") / "tiny.skops"
    save_model(pipe, path)
    return path


@pytest.fixture(scope="module")
def client(model_file):
    app = create_app(model_file, max_upload_bytes=2 * 2**20, max_files=4)
    with TestClient(app) as c:
        yield c


def _files(*items):
    """``(name, bytes)`` pairs as the test client's multipart ``files``."""
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def _read(path):
    return Path(path).read_bytes()


def _png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------- decoding
def test_upload_decodes_exactly_as_the_pipeline(pipe, data, tmp_path):
    """Bytes in memory give the array ImageLoader gives from the file."""
    paths = list(data[0][:3])
    rgb = np.random.default_rng(0).integers(0, 255, (50, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "colour.jpeg", quality=90)
    paths.append(str(tmp_path / "colour.jpeg"))
    from test_loading import write_dicom

    stored = np.random.default_rng(1).integers(0, 4095, (40, 36)).astype(np.uint16)
    paths.append(write_dicom(tmp_path / "scan.dcm", stored, window=(2000, 3000)))
    loader = pipe.named_steps["loader"]
    expected = loader.transform(paths)
    for path, want in zip(paths, expected):
        got = decode_upload(_read(path), "upload", loader)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    # and through the API: a DICOM upload is labelled as the pipeline labels the file
    with TestClient(create_app(ServedModel(pipe))) as c:
        result = c.post("/predict", files=_files(("scan", _read(paths[-1])))).json()
    assert result["results"][0]["label"] == pipe.predict(paths[-1:])[0]
    np.testing.assert_allclose(list(result["results"][0]["probabilities"].values()),
                               pipe.predict_proba(paths[-1:])[0], atol=1e-6)


def test_predictions_equal_the_models_own(client, pipe, data):
    paths = list(data[0][:4])
    response = client.post("/predict", files=_files(*[(Path(p).name, _read(p))
                                                      for p in paths]))
    assert response.status_code == 200
    results = response.json()["results"]
    proba, labels = pipe.predict_proba(paths), pipe.predict(paths)
    for result, path, row, label in zip(results, paths, proba, labels):
        assert result["file"] == Path(path).name
        assert result["label"] == label
        assert list(result["probabilities"]) == list(pipe.classes_)
        np.testing.assert_allclose(list(result["probabilities"].values()), row, atol=1e-6)
        assert result["probability"] == pytest.approx(result["probabilities"][label])
        assert result["threshold"] is None  # a plain pipeline: the most probable class
        assert result["model_id"] == "tiny"
        assert result["model_version"].startswith("sha256:")
        assert "gradcam_png" not in result
        assert result["trained_on"] is True  # the model was fitted on these files
    assert "not a medical device" in response.json()["disclaimer"]


def test_each_result_says_whether_the_model_trained_on_that_film(client, data, tmp_path):
    fresh, _ = write_synthetic_xray_directory(tmp_path / "new", 2, SIZE, random_state=5)
    with Image.open(data[0][1]) as film:  # a training film, larger, as JPEG (max 4 files)
        buffer = io.BytesIO()
        film.convert("RGB").resize((2 * SIZE, 2 * SIZE)).save(buffer, "JPEG", quality=90)
    items = [("copy.png", _read(data[0][0])), ("export.jpeg", buffer.getvalue()),
             *[(Path(p).name, _read(p)) for p in fresh]]
    results = client.post("/predict", files=_files(*items)).json()["results"]
    assert [r["trained_on"] for r in results] == [True, True, False, False]
    # a model that kept no record of its training images cannot tell
    blind = create_app(ServedModel(_without_records(client.app.state.served.model)))
    with TestClient(blind) as c:
        result = c.post("/predict", files=_files(items[0])).json()["results"][0]
    assert result["trained_on"] is None and result["label"] is not None


def _without_records(pipe):
    """The pipeline as a cxrlearn older than the training-image records saved it."""
    cnn = object.__new__(type(pipe[-1]))
    cnn.__dict__.update(pipe[-1].__dict__, training_fingerprints_=None, training_hashes_=None)
    return Pipeline([*pipe.steps[:-1], (pipe.steps[-1][0], cnn)])


@pytest.mark.parametrize("kind", ["fixed", "operating_point"])
def test_labels_come_from_a_meta_estimators_threshold(pipe, data, kind):
    """A threshold classifier decides at its own threshold, not at argmax."""
    from cxrlearn import OperatingPointClassifier

    paths = data[0]
    p = pipe.predict_proba(paths)[:, 1]
    if kind == "fixed":
        threshold = float(np.quantile(p, 0.8))  # far from 0.5: labels differ from argmax
        model = FixedThresholdClassifier(FrozenEstimator(pipe), threshold=threshold,
                                         pos_label="PNEUMONIA").fit(paths[:4], data[1][:4])
    else:
        model = OperatingPointClassifier(FrozenEstimator(pipe), target_sensitivity=0.99)
        threshold = model.fit(paths, data[1]).threshold_
    assert (model.predict(paths) != pipe.predict(paths)).any()
    served = ServedModel(model)
    X = pipe.named_steps["loader"].transform(paths)
    labels, proba = served.predict(X)
    np.testing.assert_array_equal(labels, model.predict(paths))
    np.testing.assert_allclose(proba, model.predict_proba(paths), atol=1e-6)
    assert served.operating_point["threshold"] == pytest.approx(threshold)
    # the original model still reads files: the serving copy changed nothing in it
    assert model.estimator_.estimator.named_steps["loader"] is pipe.named_steps["loader"]
    with TestClient(create_app(served)) as c:
        result = c.post("/predict", files=_files(("a.png", _read(paths[0])))).json()
    assert result["results"][0]["threshold"] == pytest.approx(threshold)
    assert result["results"][0]["label"] == model.predict(paths[:1])[0]


def test_the_network_runs_once_for_labels_and_probabilities(pipe, data, monkeypatch):
    served = ServedModel(pipe)
    X = pipe.named_steps["loader"].transform(data[0][:5])
    calls = []
    original = PneumoniaCNN.predict_proba

    def counting(self, X):
        calls.append(len(X))
        return original(self, X)

    monkeypatch.setattr(PneumoniaCNN, "predict_proba", counting)
    labels, proba = served.predict(X)
    assert calls == [5]
    served.predict(X)  # a new batch is computed afresh, not served from memory
    assert calls == [5, 5]
    monkeypatch.undo()
    np.testing.assert_array_equal(labels, pipe.predict(data[0][:5]))
    np.testing.assert_allclose(proba, pipe.predict_proba(data[0][:5]), atol=1e-6)


def test_model_without_an_image_loader_is_refused(pipe):
    with pytest.raises(ValueError, match="exactly one ImageLoader"):
        ServedModel(pipe.named_steps["cnn"])  # takes arrays, not files
    two = Pipeline([("a", ImageLoader()), ("b", ImageLoader()), ("cnn", small_cnn())])
    with pytest.raises(ValueError, match="steps before its ImageLoader"):
        ServedModel(two)


# ------------------------------------------------------------- endpoints
def test_health_model_and_openapi(client):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["model_id"] == "tiny"
    model = client.get("/model").json()
    assert model["classes"] == ["NORMAL", "PNEUMONIA"]
    assert model["operating_point"]["threshold"] is None
    assert model["input"]["height"] == SIZE and model["input"]["intensity"] == "equalize"
    assert model["model"]["parameters"]["conv_filters"] == [8, 16]
    assert model["model"]["training"]["epochs_trained"] == 2
    assert model["model"]["training"]["networks"] == 1
    assert model["limits"]["max_files"] == 4
    assert model["limits"]["max_upload_bytes"] == 2 * 2**20
    assert "not a medical device" in model["disclaimer"]
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/health", "/model"} <= set(schema["paths"])
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["files"]["type"] == "array"
    assert "FileResult" in schema["components"]["schemas"]
    # no documentation pages that load scripts from a CDN
    assert client.get("/docs").status_code == 404


def test_page_is_self_contained_with_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "Research tool, not a medical device" in html and "not a diagnosis" in html
    assert '<input type="file"' in html
    # scripts and styles are the app's own files: no inline code, nothing from elsewhere
    assert "<style" not in html and "style=" not in html and " on" + "click" not in html
    assert html.count("<script") == 1 and 'src="static/app.js"' in html
    assert "http://" not in html and "https://" not in html
    for response in (page, client.get("/health"), client.get("/static/app.js")):
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/static/../../setup.cfg", "/static/%2e%2e%2fsetup.cfg",
                                  "/static/index.html", "/static/_app.py", "/setup.cfg"])
def test_no_client_path_reaches_the_filesystem(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "error" in response.json()


def test_gradcam_overlay_on_request(client, pipe, data):
    from cxrlearn.explain import grad_cam, overlay

    path = data[0][0]
    response = client.post("/predict?gradcam=true", files=_files(("x.png", _read(path))))
    result = response.json()["results"][0]
    view = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["image_png"]))))
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["gradcam_png"]))))
    X = pipe.named_steps["loader"].transform([path])
    assert view.shape == (SIZE, SIZE) and shown.shape == (SIZE, SIZE, 3)
    np.testing.assert_allclose(view, np.round(X[0, :, :, 0] * 255), atol=1)
    heatmap = grad_cam(pipe, [path], target=result["label"])[0]
    np.testing.assert_allclose(shown, overlay(X[0], heatmap), atol=2)


def test_a_seed_ensemble_is_served_and_explained(data, tmp_path):
    from cxrlearn.explain import grad_cam, overlay

    ensemble = Pipeline([
        ("loader", ImageLoader(image_size=SIZE, color_mode="grayscale", intensity="equalize")),
        ("cnn", small_cnn(epochs=2, n_networks=2)),
    ]).fit(*data)
    save_model(ensemble, tmp_path / "ensemble.skops")
    paths = list(data[0][:3])
    with TestClient(create_app(tmp_path / "ensemble.skops")) as c:
        response = c.post("/predict?gradcam=true",
                          files=_files(*[(Path(p).name, _read(p)) for p in paths]))
        training = c.get("/model").json()["model"]["training"]
    # epochs are counted per network, not over the ensemble's history
    assert training["networks"] == 2 and training["epochs_trained"] == 2
    assert response.status_code == 200
    results = response.json()["results"]
    proba = ensemble.predict_proba(paths)
    X = ensemble.named_steps["loader"].transform(paths)
    for result, path, row, x in zip(results, paths, proba, X):
        np.testing.assert_allclose(list(result["probabilities"].values()), row, atol=1e-6)
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["gradcam_png"]))))
        heatmap = grad_cam(ensemble, [path], target=result["label"])[0]
        np.testing.assert_allclose(shown, overlay(x, heatmap), atol=2)


def test_a_model_with_a_companion_is_served_and_explained(data, tmp_path):
    """One 32 px network and two that shrink the images to 16 px, in one model.

    Built as ``cxrlearn train`` builds it: the loader passes the films' own
    grey levels, the main network equalises them itself, the companion does
    not; the picture "as the network sees it" is the equalised film.
    """
    from cxrlearn._decoders import _normalize_intensity
    from cxrlearn.explain import grad_cam, overlay

    companion = small_cnn(epochs=3, n_networks=2, conv_filters=(4,), resize=16)
    paired = Pipeline([
        ("loader", ImageLoader(image_size=SIZE, color_mode="grayscale", intensity="raw")),
        ("cnn", small_cnn(epochs=2, companion=companion, equalize=True)),
    ]).fit(*data)
    save_model(paired, tmp_path / "paired.skops")
    paths = list(data[0][:3])
    with TestClient(create_app(tmp_path / "paired.skops")) as c:
        response = c.post("/predict?gradcam=true",
                          files=_files(*[(Path(p).name, _read(p)) for p in paths]))
        training = c.get("/model").json()["model"]["training"]
    assert training["networks"] == 1 and training["epochs_trained"] == 2
    assert training["companion"]["networks"] == 2
    assert training["companion"]["epochs_trained"] == 3
    assert training["companion"]["weight"] == 0.5
    assert training["companion"]["parameters"]["resize"] == 16
    assert response.status_code == 200
    proba = paired.predict_proba(paths)
    X = paired.named_steps["loader"].transform(paths)
    for result, path, row, x in zip(response.json()["results"], paths, proba, X):
        np.testing.assert_allclose(list(result["probabilities"].values()), row, atol=1e-6)
        seen = _normalize_intensity(x, "equalize")
        assert not np.allclose(seen, x, atol=0.05)  # equalising changed the picture
        view = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["image_png"]))))
        np.testing.assert_allclose(view, np.round(seen[:, :, 0] * 255), atol=1)
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["gradcam_png"]))))
        heatmap = grad_cam(paired, [path], target=result["label"])[0]
        np.testing.assert_allclose(shown, overlay(seen, heatmap), atol=2)


# ------------------------------------------------------------- bad input
def test_bad_files_get_their_own_error_and_do_not_fail_the_others(client, pipe, data):
    good = data[0][1]
    png = _read(good)
    response = client.post("/predict", files=_files(
        ("notes.png", b"this is text, whatever its name says"),
        ("good.png", png),
        ("truncated.png", png[: len(png) // 2]),
        ("empty.jpeg", b""),
    ))
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["file"] for r in results] == ["notes.png", "good.png", "truncated.png",
                                            "empty.jpeg"]
    assert results[0]["error"]["status"] == 415
    assert results[0]["error"]["code"] == "wrong_type"
    assert "PNG, JPEG or DICOM" in results[0]["error"]["detail"]
    assert results[1]["label"] == pipe.predict([good])[0]
    np.testing.assert_allclose(results[1]["probabilities"]["PNEUMONIA"],
                               pipe.predict_proba([good])[0, 1], atol=1e-6)
    assert results[2]["error"]["status"] == 422 and results[2]["error"]["code"] == "unreadable"
    assert results[3]["error"] == {"status": 422, "code": "unreadable",
                                   "detail": "empty file (0 bytes)"}


def test_a_request_whose_files_all_fail_is_a_4xx(client):
    response = client.post("/predict", files=_files(("a.gif", b"GIF89a....")))
    assert response.status_code == 415
    assert response.json()["results"][0]["file"] == "a.gif"


def test_images_over_the_loaders_limits_are_413(pipe, data):
    loader = ImageLoader(image_size=SIZE, color_mode="grayscale", intensity="equalize",
                         max_pixels=SIZE * SIZE - 1).fit(data[0][:1])
    strict = Pipeline([("loader", loader), ("cnn", pipe.named_steps["cnn"])])
    with TestClient(create_app(strict)) as c:
        response = c.post("/predict", files=_files(("big.png", _read(data[0][0]))))
    assert response.status_code == 413
    error = response.json()["results"][0]["error"]
    assert error["code"] == "too_large" and "max_pixels" in error["detail"]


def test_request_limits(client, data):
    png = _read(data[0][0])
    noise = np.random.default_rng(0).integers(0, 255, (1200, 1200), dtype=np.uint8)
    big = _png_bytes(noise)
    assert len(big) > 2 * 2**20 / 2
    response = client.post("/predict", files=_files(("first.png", png), ("huge.png", big),
                                                    ("huge2.png", big)))
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large" and "2 MiB" in error["detail"]
    assert error["file"] == "huge2.png"  # the file being received when the limit was crossed
    too_many = client.post("/predict", files=_files(*[(f"{i}.png", png) for i in range(5)]))
    assert too_many.status_code == 413
    assert too_many.json()["error"]["code"] == "too_many_files"
    assert too_many.json()["error"]["file"] == "4.png"
    not_multipart = client.post("/predict", content=png,
                                headers={"content-type": "image/png"})
    assert not_multipart.status_code == 415
    assert "multipart/form-data" in not_multipart.json()["error"]["detail"]
    no_files = client.post(  # a text field only
        "/predict", content=b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n"
                            b"--b--\r\n",
        headers={"content-type": "multipart/form-data; boundary=b"})
    assert no_files.status_code == 400 and no_files.json()["error"]["code"] == "no_files"
    broken = client.post("/predict", content=b"--b\r\nContent-Disposition: form-data; "
                                             b"name=\"files\"; filename=\"a.png\"\r\n\r\nabc",
                         headers={"content-type": "multipart/form-data; boundary=b"})
    assert broken.status_code == 400 and "incomplete" in broken.json()["error"]["detail"]
    bad_flag = client.post("/predict?gradcam=maybe", files=_files(("a.png", png)))
    assert bad_flag.status_code == 422 and "gradcam" in bad_flag.json()["error"]["detail"]


def test_client_file_names_are_labels_only(client, data):
    png = _read(data[0][0])
    from cxrlearn.serve._app import _client_name

    response = client.post("/predict", files=_files(("../../etc/passwd.png", png),
                                                    ("C:\\scans\\x.png", png)))
    names = [r["file"] for r in response.json()["results"]]
    assert names == ["passwd.png", "x.png"]
    assert _client_name("a\x07b\n.png", 0) == "ab.png"
    assert _client_name("/tmp/", 2) == "file-3"


def test_uploads_are_never_written_to_disk(client, data, monkeypatch):
    """A 1.4 MB upload (Starlette's form parser spools above 1 MiB) stays in memory."""
    def refuse(*args, **kwargs):
        raise AssertionError("an upload went to a temporary file")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile",
                 "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    noise = np.random.default_rng(0).integers(0, 255, (1200, 1200), dtype=np.uint8)
    big = _png_bytes(noise)
    assert len(big) > 2**20
    response = client.post("/predict", files=_files(("big.png", big)))
    assert response.status_code == 200 and "label" in response.json()["results"][0]


def test_trusted_hosts_against_dns_rebinding(model_file):
    app = create_app(model_file, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/health").status_code == 200
        assert c.get("/health", headers={"host": "evil.example"}).status_code == 400


# ------------------------------------------------------------- concurrency
def test_concurrent_predictions_are_batched_and_unchanged(pipe, data):
    from cxrlearn.serve import InferenceWorker

    served = ServedModel(pipe)
    worker = InferenceWorker(served, max_batch=32)
    X = pipe.named_steps["loader"].transform(data[0][:6])
    try:
        gate = threading.Event()
        blocker = worker.submit(gate.wait, 30)  # the thread is busy: the next ones queue
        futures = [worker.submit_predict(X[i:i + 1]) for i in range(6)]
        before = worker.batches
        gate.set()
        results = [f.result(timeout=60) for f in futures]
        assert blocker.result(timeout=5) is True
        assert worker.batches - before == 1  # six requests, one network call
        alone = [served.predict(X[i:i + 1]) for i in range(6)]
        for (labels, proba), (labels1, proba1) in zip(results, alone):
            np.testing.assert_array_equal(labels, labels1)
            np.testing.assert_allclose(proba, proba1, atol=1e-6)
    finally:
        worker.close()


# ------------------------------------------------------------- the real server
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_file, tmp_path_factory):
    """``cxrlearn serve`` in a subprocess on 127.0.0.1; its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cxrlearn.cli", "serve", str(model_file), "--port",
             str(port)], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"cxrlearn serve did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _post(url, files, timeout=60):
    boundary = "cxrlearn-test-boundary"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + data + b"\r\n" for name, data in files) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.loads(r.read())


def test_real_server_answers_while_computing(server, data):
    """Requests are served while others are being computed (inference off the loop)."""
    png = _read(data[0][0])
    health_times, done = [], threading.Event()

    def heavy():
        try:
            for _ in range(3):
                _post(server + "/predict?gradcam=true", [(f"{i}.png", png) for i in range(4)])
        finally:
            done.set()

    thread = threading.Thread(target=heavy)
    thread.start()
    while not done.is_set():
        start = time.perf_counter()
        with urllib.request.urlopen(server + "/health", timeout=30) as r:
            assert r.status == 200
        health_times.append(time.perf_counter() - start)
    thread.join()
    assert health_times and max(health_times) < 5.0
    # the server binds to loopback and answers to loopback names only
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(
            server + "/health", headers={"Host": "evil.example"}), timeout=10)
    assert info.value.code == 400


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_page_in_a_headless_browser(server, pipe, data, tmp_path):
    """Upload a file through the page's own control; the result renders.

    The screenshot stays in the test's tmp_path and is copied to
    ``$CXRLEARN_ARTIFACTS`` when that variable is set.
    """
    browser, driver_path = _chromium(), shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("no headless Chromium with chromedriver (Debian: apt-get install "
                    "chromium chromium-driver; .ci/run installs them when it can)")
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (tests extra)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,900", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=driver_path))
    try:
        driver.get(server + "/")
        banner = driver.find_element(By.ID, "banner").text
        assert "not a medical device" in banner and "not a diagnosis" in banner
        WebDriverWait(driver, 30).until(
            lambda d: "tiny" in d.find_element(By.ID, "model").text)
        path = data[0][0]
        driver.find_element(By.ID, "files").send_keys(str(path))
        label = WebDriverWait(driver, 120).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".result .label"))[0].text
        assert label == pipe.predict([path])[0]
        assert Path(path).name in driver.find_element(By.CSS_SELECTOR, ".result .file").text
        # the model was fitted on this very file: the page says so
        assert "used to train the model" in driver.find_element(
            By.CSS_SELECTOR, ".result .warning").text
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "const i = document.querySelector('.result img.overlay');"
            "return i && i.complete && i.naturalWidth > 0;"))
        assert driver.execute_script(
            "return document.querySelector('.result img.overlay').naturalWidth") == SIZE
        shot = tmp_path / "serve-page.png"
        driver.save_screenshot(str(shot))
        if os.environ.get("CXRLEARN_ARTIFACTS"):
            shutil.copy(shot, Path(os.environ["CXRLEARN_ARTIFACTS"]) / shot.name)
        problems = [entry for entry in driver.get_log("browser")  # CSP violations too
                    if entry["level"] == "SEVERE" or "Content Security" in entry["message"]]
        assert not problems, problems
    finally:
        driver.quit()
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.std() > 20  # a rendered page, not a blank one


def test_serve_command_refuses_bad_input(model_file, tmp_path, capsys):
    from cxrlearn.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "127.0.0.1" in capsys.readouterr().out
    assert main(["serve", str(model_file), "--port", "70000"]) == 1
    assert "--port" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing.skops")]) == 1
    assert "missing.skops" in capsys.readouterr().err
    pickle = tmp_path / "model.joblib"
    pickle.write_bytes(b"not even a pickle")
    assert main(["serve", str(pickle)]) == 1
    assert "--allow-pickle" in capsys.readouterr().err
    assert main(["serve", str(model_file), "--gradcam-layer", "nope", "--port", "0"]) == 1
    assert "no layer named 'nope'" in capsys.readouterr().err
