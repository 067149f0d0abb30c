"""Crafted model contents for the persistence tests: each writes a marker file
when it is unpickled or rebuilt, the way a malicious model file would run code."""

import os

MARKER_ENV = "CXRLEARN_TEST_MARKER"


def write_marker(*_):
    with open(os.environ[MARKER_ENV], "w") as fh:
        fh.write("code from the model file ran")
    return "pwned"


class MarkerOnLoad:
    """Writes the marker in ``__setstate__`` (skops and pickle call it)."""

    def __getstate__(self):
        return {"x": 1}

    def __setstate__(self, state):
        write_marker()
        self.__dict__.update(state)


class PickleBomb:
    """Pickles as a call of :func:`write_marker`: runs on ``pickle.load``."""

    def __reduce__(self):
        return (write_marker, ())
