"""Backend choice, lazy imports, dispatch on tensor type, and the contract's shape."""
from __future__ import annotations

import ast
import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKENDS, OTHER_BACKENDS

import multissd
from multissd import backends, boxes, nn, registry

BACKEND_DIR = Path(backends.__file__).parent


def _run(code: str, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "MULTISSD_BACKEND"}
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                            check=True)
    return result.stdout.strip()


def test_import_loads_no_framework():
    out = _run("import multissd, sys; multissd.use_backend('paddle') if multissd.backends.is_installed('paddle') "
               "else None; print('torch' in sys.modules, 'paddle' in sys.modules)")
    assert out == "False False"


def test_issue_one_liner_prints_false():
    if "paddle" not in BACKENDS:
        pytest.skip("paddle not installed")
    out = _run("import multissd, sys; multissd.use_backend('paddle'); print('torch' in sys.modules)")
    assert out == "False"


def test_backend_imported_on_first_use():
    if "torch" not in BACKENDS:
        pytest.skip("torch not installed")
    out = _run("import multissd, sys, numpy as np; multissd.use_backend('torch'); "
               "a = multissd.asarray(np.zeros(3)); print('torch' in sys.modules, type(a).__module__)")
    assert out == "True torch"


def test_default_is_first_installed(monkeypatch):
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    registry._explicit = None
    assert multissd.get_backend() == backends.available_backends()[0]


def test_default_falls_back_to_numpy_alone(monkeypatch):
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    registry._explicit = None
    monkeypatch.setattr(registry, "is_installed", lambda name: name == "numpy")
    assert multissd.get_backend() == "numpy"


def test_env_var_is_read_at_call_time(monkeypatch):
    registry._explicit = None
    monkeypatch.setenv(registry.ENV_VAR, "numpy")
    assert multissd.get_backend() == "numpy"
    monkeypatch.setenv(registry.ENV_VAR, "nonsense")
    with pytest.raises(ValueError, match="MULTISSD_BACKEND='nonsense'"):
        multissd.get_backend()


def test_explicit_beats_env(monkeypatch):
    monkeypatch.setenv(registry.ENV_VAR, "numpy")
    multissd.use_backend(BACKENDS[-1])
    assert multissd.get_backend() == BACKENDS[-1]


def test_use_backend_as_context_manager():
    multissd.use_backend("numpy")
    with multissd.use_backend(BACKENDS[-1]) as name:
        assert name == BACKENDS[-1] == multissd.get_backend()
    assert multissd.get_backend() == "numpy"


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match=r"Expected one of \['numpy', 'paddle', 'torch'\]. Received: backend='jax'"):
        multissd.use_backend("jax")


def test_missing_framework_names_pip_extra(monkeypatch):
    monkeypatch.setattr(registry, "is_installed", lambda name: name == "numpy")
    monkeypatch.delitem(sys.modules, "multissd.backends.paddle.boxes", raising=False)
    with pytest.raises(multissd.BackendNotAvailableError, match=r"pip install 'multissd\[paddle\]'"):
        multissd.use_backend("paddle")


@pytest.mark.parametrize("name", BACKENDS)
def test_asarray_and_to_numpy_round_trip(name):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    with multissd.use_backend(name):
        tensor = multissd.asarray(data)
        assert backends.backend_name_of(tensor) == name
        back = multissd.to_numpy(tensor)
    assert back.dtype == np.float32 and np.array_equal(back, data)
    with multissd.use_backend(name):
        assert multissd.to_numpy(multissd.asarray(data, "int64")).dtype == np.int64


@pytest.mark.parametrize("name", OTHER_BACKENDS)
def test_dispatch_follows_tensor_type_not_active_backend(name):
    boxes = np.array([[0, 0, 2, 2], [1, 1, 3, 3]], dtype=np.float32)
    tensor = backends.load(name).asarray(boxes)
    with multissd.use_backend("numpy"):
        result = multissd.box_iou(tensor, tensor)
    assert backends.backend_name_of(result) == name
    with multissd.use_backend(name):
        assert isinstance(multissd.box_iou(boxes, boxes), np.ndarray)


@pytest.mark.parametrize("name", OTHER_BACKENDS)
def test_mixing_frameworks_is_a_type_error_naming_both(name):
    boxes = np.array([[0, 0, 2, 2]], dtype=np.float32)
    with pytest.raises(TypeError, match=rf"two frameworks.*numpy.*\({name}\)|two frameworks.*\({name}\).*numpy"):
        multissd.box_iou(boxes, backends.load(name).asarray(boxes))


def test_torch_and_paddle_mixed_is_a_type_error():
    if not {"torch", "paddle"} <= set(BACKENDS):
        pytest.skip("needs torch and paddle")
    a = backends.load("torch").asarray(np.zeros((1, 4), np.float32))
    b = backends.load("paddle").asarray(np.zeros((1, 4), np.float32))
    with pytest.raises(TypeError, match=r"\(torch\) and .*\(paddle\)"):
        multissd.box_iou(a, b)


def _public_functions_in_order(path: Path, names) -> list[str]:
    tree = ast.parse(path.read_text())
    return [node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names]


@pytest.mark.parametrize("name", backends.BACKEND_NAMES)
def test_backend_files_implement_contract_in_order(name):
    assert _public_functions_in_order(BACKEND_DIR / name / "boxes.py", boxes.CONTRACT) == list(boxes.CONTRACT)
    assert _public_functions_in_order(BACKEND_DIR / name / "nn.py", nn.CONTRACT) == list(nn.CONTRACT)


@pytest.mark.parametrize("name", BACKENDS)
def test_nn_functions_reachable_from_the_backend_module(name):
    package = importlib.import_module(f"multissd.backends.{name}")  # from multissd.backends import paddle as P
    assert package.TinySSD is backends.load_nn(name).TinySSD
    assert package.box_iou is backends.load(name).box_iou
    assert (package.boxes, package.nn, package.trainer) == (backends.load(name), backends.load_nn(name),
                                                         backends.load_trainer(name))
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        package.nonsense  # noqa: B018


def test_contract_functions_are_all_public_and_documented():
    for fname in boxes.BOXES.public + nn.NN.public:
        func = getattr(multissd, fname)
        doc = inspect.getdoc(func)
        assert doc and len(doc) > 40, fname


def test_implements_rejects_a_wrong_signature():
    with pytest.raises(TypeError, match="contract says"):
        @boxes.implements
        def box_iou(a, b):  # noqa: ARG001 - wrong parameter names on purpose
            return None


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_functions_carry_contract_docstrings(name):
    for module, contract in ((backends.load(name), boxes), (backends.load_nn(name), nn)):
        for fname in contract.CONTRACT:
            assert getattr(module, fname).__doc__ == getattr(contract, fname).__doc__


def test_capabilities_are_declared():
    assert backends.load_trainer("numpy").CAN_TRAIN is False
    for name in OTHER_BACKENDS:
        assert backends.load_trainer(name).CAN_TRAIN is True
