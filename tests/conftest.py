"""Shared fixtures: the backends under test, one seeded RNG, one tolerance table.

``MULTISSD_TEST_BACKENDS=torch`` (comma-separated) restricts the run to some backends; by default
every installed backend is tested. The NumPy backend is the reference: cross-backend tests feed
the same NumPy arrays to every backend and compare with it.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from multissd import backends

ALL_BACKENDS = backends.BACKEND_NAMES  # numpy (the reference), torch, paddle


def _selected() -> list[str]:
    wanted = os.environ.get("MULTISSD_TEST_BACKENDS", "").strip()
    names = [n.strip() for n in wanted.split(",") if n.strip()] if wanted else list(ALL_BACKENDS)
    return [n for n in names if backends.is_installed(n)]


BACKENDS = _selected()
# Backends compared against the NumPy reference (numpy itself is the reference).
OTHER_BACKENDS = [n for n in BACKENDS if n != "numpy"]
HAS_TORCH = importlib.util.find_spec("torch") is not None

# One tolerance table. Discrete results (indices, labels, masks) are always compared exactly.
TOL = {
    "float32": dict(rtol=1e-5, atol=1e-5),
    "float64": dict(rtol=1e-12, atol=1e-12),
}


def backend_params(names):
    return [pytest.param(name, id=name) for name in names]


@pytest.fixture(params=backend_params(BACKENDS))
def backend(request):
    """Each installed backend module in turn (numpy, torch, paddle)."""
    return backends.load(request.param)


@pytest.fixture(params=backend_params(OTHER_BACKENDS))
def other(request):
    """Each non-reference backend module in turn (torch, paddle), to compare with numpy."""
    return backends.load(request.param)


@pytest.fixture(params=backend_params(BACKENDS))
def nn(request):
    """Each installed backend's model-and-loss module (``multissd.backends.<name>.nn``) in turn."""
    return backends.load_nn(request.param)


@pytest.fixture(params=backend_params(OTHER_BACKENDS))
def other_nn(request):
    """Each non-reference backend's model-and-loss module in turn."""
    return backends.load_nn(request.param)


@pytest.fixture
def ref_nn():
    """The NumPy reference's model-and-loss module."""
    return backends.load_nn("numpy")


def backend_name(module) -> str:
    """``"torch"`` for ``multissd.backends.torch.nn`` (or ``.boxes``, ``.train``)."""
    return module.__name__.split(".")[-2]


def nn_tensor(nn, array):
    """``array`` as a tensor of the backend of the model module ``nn``."""
    return backends.load(backend_name(nn)).asarray(array)


def host(x):
    """A tensor of any backend (or a Python float) as NumPy."""
    return x if isinstance(x, float) else backends.to_host(x)


@pytest.fixture
def ref():
    """The NumPy reference backend module."""
    return backends.load("numpy")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _restore_backend_choice():
    """Tests may call use_backend; restore the module-level choice afterwards."""
    from multissd import registry
    saved = registry._explicit
    yield
    registry._explicit = saved


def assert_close(actual, expected, dtype="float32"):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               **TOL[dtype])


def assert_same(actual, expected):
    """Exact equality (discrete results), dtype kinds included."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_array_equal(actual, expected)


def random_boxes(rng, n, scale=1.0, min_size=0.01, dtype=np.float32):
    """``n`` random corner boxes inside ``[0, scale]^2`` with sides >= ``min_size * scale``."""
    xy = rng.uniform(0, 0.8, size=(n, 2))
    wh = rng.uniform(min_size, 0.5, size=(n, 2))
    return (np.concatenate([xy, np.minimum(xy + wh, 1.0)], axis=1) * scale).astype(dtype)


def random_labels(rng, batch, max_objects, num_classes=3, pad_rows=0, empty_images=()):
    """Labels ``(B, max_objects + pad_rows, 5)``: a random number of objects per image, then padding."""
    rows = max_objects + pad_rows
    labels = np.full((batch, rows, 5), -1.0, dtype=np.float32)
    for b in range(batch):
        if b in empty_images:
            continue
        n = int(rng.integers(1, max_objects + 1))
        labels[b, :n, 0] = rng.integers(0, num_classes, size=n)
        labels[b, :n, 1:] = random_boxes(rng, n, min_size=0.05)
    return labels



def require(name: str, why: str, module: bool = False) -> str | None:
    """The path of the program ``name`` (``module=True``: the Python package ``name`` is importable);
    skip saying ``why`` without it -- or fail, under ``MULTISSD_REQUIRE_TOOLS=1`` (``.ci/run`` sets it:
    CI installs every tool, so there a skip would hide a test that never ran)."""
    import shutil
    found = (name if importlib.util.find_spec(name) else None) if module else shutil.which(name)
    if found is None:
        message = f"needs {name} ({why})"
        if os.environ.get("MULTISSD_REQUIRE_TOOLS", "").strip() not in ("", "0"):
            pytest.fail(message + "; MULTISSD_REQUIRE_TOOLS=1 says it must be here")
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """The documentation built once for the session (``mkdocs build --strict``): ``(site folder,
    completed process)``; skipped without the docs extra. The checks of the built site share it."""
    import subprocess
    import sys
    from pathlib import Path

    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (extra [docs])")
    site = tmp_path_factory.mktemp("docs") / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    return site, result
