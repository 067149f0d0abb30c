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
