"""cxrlearn.utils.import_keras: the TensorFlow process settings it makes."""

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os
from cxrlearn.utils import import_keras
keras = import_keras()
import tensorflow as tf
x = tf.ones((256, 256)) @ tf.ones((256, 256))  # a first CPU allocation
print(json.dumps({k: os.environ.get(k) for k in
                  ("TF_CPU_ALLOCATOR_USE_BFC", "TF_CPP_MIN_LOG_LEVEL")}
                 | {"sum": float(tf.reduce_sum(x))}))
"""


def _probe(**env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("TF_CPU_ALLOCATOR_USE_BFC", "TF_CPP_MIN_LOG_LEVEL")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_keras_switches_on_the_pooling_allocator():
    result = _probe()
    assert result["TF_CPU_ALLOCATOR_USE_BFC"] == "true"
    assert result["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert result["sum"] == 256.0**3  # TensorFlow computes under the setting


@pytest.mark.parametrize("value", ["false", "true"])
def test_import_keras_respects_the_users_choice(value):
    result = _probe(TF_CPU_ALLOCATOR_USE_BFC=value, TF_CPP_MIN_LOG_LEVEL="1")
    assert result["TF_CPU_ALLOCATOR_USE_BFC"] == value
    assert result["TF_CPP_MIN_LOG_LEVEL"] == "1"


STARTUP = """
import sys
from cxrlearn.utils import import_keras
import_keras()
import tensorflow as tf
tf.ones((2, 2)) @ tf.ones((2, 2))  # a first operation: devices are set up
print("done", file=sys.stderr)
"""


def test_import_keras_prints_no_tensorflow_startup_lines():
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", STARTUP], env=base,
                         capture_output=True, text=True, check=True)
    assert out.stderr.strip() == "done", out.stderr


def test_startup_filter_keeps_other_lines(capfd):
    from cxrlearn.utils._keras import _filtered_native_stderr

    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written "
        "to STDERR",
        "I0000 00:00:1796194255.402443   18005 port.cc:153] oneDNN custom operations are on.",
        "W0000 00:00:1796194255.402944   18005 cudart_stub.cc:31] Could not find cuda "
        "drivers on your machine, GPU will not be used.",
        "E0000 00:00:1796194279.181769   18762 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    ]
    kept = ["E0000 00:00:1.5   1 loader.cc:1] a real error", "Traceback: something else"]
    with _filtered_native_stderr():
        os.write(2, ("\n".join(noise[:2] + kept[:1] + noise[2:] + kept[1:]) + "\n").encode())
    assert capfd.readouterr().err.splitlines() == kept
