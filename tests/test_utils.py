"""cxrlearn.utils in a fresh process: the TensorFlow settings of import_keras, and
limit_tf_threads once TensorFlow has started.

The test processes of ``make test`` run TensorFlow capped at one thread
(conftest.py), so what TensorFlow does with its own defaults shows only in a
process of its own.
"""

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os, warnings
from cxrlearn.utils import import_keras, limit_tf_threads
from cxrlearn.utils._threads import _available_cpus
keras = import_keras()
import tensorflow as tf
x = tf.ones((256, 256)) @ tf.ones((256, 256))  # a first CPU allocation
cpus = _available_cpus()
with warnings.catch_warnings(record=True) as caught:  # a cap after TensorFlow started
    warnings.simplefilter("always")
    late = [limit_tf_threads(1), limit_tf_threads(1), limit_tf_threads(cpus)]
print(json.dumps({k: os.environ.get(k) for k in
                  ("TF_CPU_ALLOCATOR_USE_BFC", "TF_CPP_MIN_LOG_LEVEL")}
                 | {"sum": float(tf.reduce_sum(x)), "cpus": cpus, "late": late,
                    "intra": tf.config.threading.get_intra_op_parallelism_threads(),
                    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}))
"""


def _probe(**env):
    """Run PROBE in a fresh process; its JSON line and its standard error."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("TF_CPU_ALLOCATOR_USE_BFC", "TF_CPP_MIN_LOG_LEVEL")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


@pytest.fixture(scope="module")
def fresh():
    """PROBE with the environment's defaults: one TensorFlow start-up for two tests."""
    return _probe()


def test_import_keras_switches_on_the_pooling_allocator_quietly(fresh):
    result, stderr = fresh
    assert result["TF_CPU_ALLOCATOR_USE_BFC"] == "true"
    assert result["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert result["sum"] == 256.0**3  # TensorFlow computes under the setting
    # TensorFlow's start-up lines (absl, oneDNN, CUDA on a CPU machine) are filtered
    assert stderr.strip() == "", stderr


def test_import_keras_respects_the_users_choice():
    # the default is "true" (above); a user's "false" and log level stay as set
    result, stderr = _probe(TF_CPU_ALLOCATOR_USE_BFC="false", TF_CPP_MIN_LOG_LEVEL="1")
    assert result["TF_CPU_ALLOCATOR_USE_BFC"] == "false"
    assert result["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert result["sum"] == 256.0**3


def test_late_thread_cap_warns_once_and_does_not_raise(fresh):
    result, _ = fresh
    if result["cpus"] < 2:
        pytest.skip("needs 2 CPUs: TensorFlow's default pools are then larger than 1")
    assert result["intra"] == 0  # TensorFlow's own default: every CPU
    # the first late cap warns and says it failed; the second only says it;
    # a cap no smaller than the running pools holds
    assert result["late"] == [False, False, True]
    [warning] = result["warnings"]
    assert warning.startswith("RuntimeWarning: cxrlearn could not cap TensorFlow at 1 thread")
    assert f"with {result['cpus']} intra-op" in warning


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
