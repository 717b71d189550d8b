"""What a user can get wrong, and what each mistake gives them (issue #19, R42-R58): one line on
stderr naming the option, file or row, a non-zero exit status, no traceback, and a run folder that
can always be resumed or reused. The table in docs/failures.md lists the same cases."""
from __future__ import annotations

import errno
import json
import os
import stat

import numpy as np
import pytest
from conftest import BACKENDS
from PIL import Image
from test_datasets import write_book_folder
from test_train_cli import _StopAfter, metrics, run_train, tiny_data  # noqa: F401  (tiny_data: fixture)

from multissd import backends, evaluate, inference, predict, train, training
from multissd.training import loop
from multissd.weights import read_weights

TRAINERS = [n for n in ("torch", "paddle") if n in BACKENDS]
needs_torch = pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _same_weights(a, b) -> float:
    """The largest absolute difference between two runs' weights."""
    wa, _ = read_weights(a / "weights.safetensors")
    wb, _ = read_weights(b / "weights.safetensors")
    return max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)


# ---- R42, R49: a resumed run is the run it was, on the framework it was trained with ---------------

@pytest.mark.parametrize("backend", TRAINERS)
def test_ctrl_c_and_resume_without_backend_is_bit_identical_R42_R49(backend, tiny_data, tmp_path, monkeypatch):
    """Resumed without --backend, a paddle run goes on with paddle (it went on with the default, torch),
    and ends with the very weights of an uninterrupted run."""
    assert run_train(tiny_data, tmp_path / "straight", "--epochs", "2", backend=backend) == 0
    monkeypatch.setattr(loop, "_StopFlag", _StopAfter(4))  # Ctrl-C in epoch 2, after its first batch
    assert run_train(tiny_data, tmp_path / "split", "--epochs", "2", backend=backend) == 130
    monkeypatch.undo()
    monkeypatch.delenv("MULTISSD_BACKEND", raising=False)
    assert train.main(["--resume", str(tmp_path / "split"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "split" / "config.json").read_text())["backend"] == backend
    assert _same_weights(tmp_path / "straight", tmp_path / "split") == 0.0


class _Killed(BaseException):
    """Stands in for kill -9: nothing of multissd runs after it (no handler catches a BaseException)."""


@pytest.mark.parametrize("backend", TRAINERS)
def test_killed_mid_epoch_then_resumed_is_bit_identical_R49(backend, tiny_data, tmp_path, monkeypatch):
    assert run_train(tiny_data, tmp_path / "straight", "--epochs", "3", backend=backend) == 0
    adapter = backends.load_trainer(backend)
    real_step, steps = adapter.train_step, {"n": 0}

    def dies_in_epoch_2(*args, **kwargs):
        steps["n"] += 1
        if steps["n"] == 5:  # epoch 2 (3 batches of 4 per epoch), its second batch
            raise _Killed
        return real_step(*args, **kwargs)

    monkeypatch.setattr(adapter, "train_step", dies_in_epoch_2)
    with pytest.raises(_Killed):
        run_train(tiny_data, tmp_path / "killed", "--epochs", "3", backend=backend)
    monkeypatch.undo()
    assert training.load_checkpoint(tmp_path / "killed")[1]["epoch"] == 1
    assert train.main(["--resume", str(tmp_path / "killed"), "--no-progress", "--backend", backend]) == 0
    assert _same_weights(tmp_path / "straight", tmp_path / "killed") == 0.0


@needs_torch
@pytest.mark.parametrize("option, message", [
    (["--backend", "paddle"], "--backend 'paddle' contradicts the run"),
    (["--batch-size", "2"], "--batch-size 2 contradicts the run"),
    (["--recipe", "book"], "--recipe 'book' contradicts the run"),
    (["--lr", "0.5"], "--lr 0.5 contradicts the run"),
    (["--cls-loss", "focal"], "--cls-loss 'focal' contradicts the run"),
    (["--no-augment"], "--augment 'none' contradicts the run"),
    (["--epochs", "1"], "--epochs 1: .* has already trained 2 epochs"),
    (["--out", "elsewhere"], "--out elsewhere and --resume .* name different run folders"),
], ids=["backend", "batch-size", "recipe", "lr", "cls-loss", "no-augment", "fewer-epochs", "out"])
def test_resume_refuses_options_that_contradict_the_run_R42(option, message, tiny_data, tmp_path, capsys):
    if option[:2] == ["--backend", "paddle"] and "paddle" not in BACKENDS:
        pytest.skip("needs paddle")
    assert run_train(tiny_data, tmp_path / "run", "--epochs", "2") == 0
    capsys.readouterr()
    assert train.main(["--resume", str(tmp_path / "run"), "--no-progress", *option]) == 2
    assert __import__("re").search(message, _error(capsys))


@needs_torch
def test_resume_may_change_epochs_threads_device_and_records_them_R42(tiny_data, tmp_path, capsys):
    assert run_train(tiny_data, tmp_path / "run", "--epochs", "1") == 0
    capsys.readouterr()
    assert train.main(["--resume", str(tmp_path / "run"), "--epochs", "2", "--threads", "1", "--device", "cpu",
                       "--batch-size", "4", "--no-progress"]) == 0  # an option equal to the run's is fine
    out = capsys.readouterr().out
    assert "the cosine schedule now decays over 2 epochs instead of 1" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["epochs"], config["threads"], config["device"]) == (2, 1, "cpu")
    assert len(metrics(tmp_path / "run")) == 2


# ---- R43: any number of classes -------------------------------------------------------------------

@needs_torch
def test_ninety_nine_classes_train_R43(tmp_path):
    names = [f"thing{i}" for i in range(99)]
    root = write_book_folder(tmp_path / "b", [(f"{i}.png", i * 11) for i in range(9)], [("0.png", 98)], classes=names)
    assert train.main(["--backend", "torch", "--data", str(root), "--out", str(tmp_path / "run"), "--batch-size", "3",
                       "--epochs", "1", "--no-progress"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["spec"]["num_classes"] == 99


# ---- R45: a run folder is always resumable or reusable --------------------------------------------

@needs_torch
def test_a_folder_without_checkpoint_is_reused_and_not_resumed_R45(tiny_data, tmp_path, monkeypatch, capsys):
    adapter = backends.load_trainer("torch")
    real_step = adapter.train_step
    monkeypatch.setattr(adapter, "train_step", lambda *a, **k: (_ for _ in ()).throw(_Killed()))
    with pytest.raises(_Killed):  # killed during its first epoch: config.json, no checkpoint
        run_train(tiny_data, tmp_path / "run")
    monkeypatch.setattr(adapter, "train_step", real_step)
    assert (tmp_path / "run" / "config.json").is_file() and not (tmp_path / "run" / "checkpoint.safetensors").exists()
    assert train.main(["--resume", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "the run stopped before the end of its first epoch, so it has no checkpoint" in _error(capsys)
    assert run_train(tiny_data, tmp_path / "run") == 0
    assert f"reusing {tmp_path / 'run'}" in capsys.readouterr().out
    assert (tmp_path / "run" / "checkpoint.safetensors").is_file()


@pytest.mark.parametrize("option, message", [
    (["--lr", "-1"], "--lr must be a finite number > 0; received -1"),
    (["--lr", "nan"], "--lr must be a finite number > 0; received nan"),
    (["--cls-weight", "nan"], "Expected --cls-weight to be a finite number"),
    (["--momentum", "1.5"], "--momentum must be a finite number >= 0 and < 1"),
    (["--threads", "-2"], "--threads must be a whole number >= 1; received -2"),
    (["--image-size", "32"], "--image-size: images of 32x32 are too small for TinySSD, .* at least 64 x 64"),
], ids=["negative-lr", "nan-lr", "nan-cls-weight", "momentum", "threads", "image-size"])
@pytest.mark.parametrize("backend", TRAINERS)
def test_bad_options_are_refused_before_anything_is_written_R45_R46_R47_R48(option, message, backend, tiny_data,
                                                                              tmp_path, capsys):
    assert run_train(tiny_data, tmp_path / "run", *option, backend=backend) == 2
    assert __import__("re").search(message, _error(capsys))
    assert not (tmp_path / "run").exists()


@needs_torch
def test_data_too_small_for_the_model_R47(tmp_path, capsys):
    root = write_book_folder(tmp_path / "b", [("0.png", 0), ("1.png", 0)], [("0.png", 0)], size=48)
    assert train.main(["--backend", "torch", "--data", str(root), "--out", str(tmp_path / "run"), "--batch-size", "2",
                       "--epochs", "1", "--no-progress"]) == 2
    assert f"the data {root}: images of 48x48 are too small for TinySSD" in _error(capsys)
    assert train.main(["--backend", "torch", "--data", str(root), "--out", str(tmp_path / "run"), "--batch-size", "2",
                       "--epochs", "1", "--no-progress", "--image-size", "64"]) == 0  # the folder is reused


# ---- R46: a diverging run says so, truthfully --------------------------------------------------------

@needs_torch
def test_divergence_in_the_first_epoch_claims_no_checkpoint_R46(tiny_data, tmp_path, monkeypatch, capsys):
    adapter = backends.load_trainer("torch")
    monkeypatch.setattr(adapter, "train_step", lambda *a, **k: (_ for _ in ()).throw(FloatingPointError("loss is nan")))
    assert run_train(tiny_data, tmp_path / "run") == 1
    line = _error(capsys)
    assert "Non-finite loss at epoch 1, batch 1" in line and "before any checkpoint" in line
    assert "kept its last good checkpoint" not in line


@needs_torch
def test_weights_that_became_non_finite_stop_the_run_R46(tiny_data, tmp_path, monkeypatch, capsys):
    """The last step of an epoch leaves NaN weights, its loss was finite: the run stops naming it
    (it failed in validation with "boxes1 contains a non-finite coordinate" and kept no checkpoint)."""
    import torch
    adapter = backends.load_trainer("torch")
    real_step, steps = adapter.train_step, {"n": 0}

    def poisons_the_weights(net, *args, **kwargs):
        figures = real_step(net, *args, **kwargs)
        steps["n"] += 1
        if steps["n"] == 6:  # the last step of epoch 2
            with torch.no_grad():
                next(net.parameters()).fill_(float("nan"))
        return figures

    monkeypatch.setattr(adapter, "train_step", poisons_the_weights)
    assert run_train(tiny_data, tmp_path / "run", "--epochs", "2") == 1
    line = _error(capsys)
    assert "The weights became non-finite at the end of epoch 2" in line and "kept its last good checkpoint" in line
    assert training.load_checkpoint(tmp_path / "run")[1]["epoch"] == 1


@needs_torch
def test_huge_weights_still_give_a_run_and_its_pictures_R46(tiny_data, tmp_path, monkeypatch, capsys):
    """Weights that grew huge but stay finite (--lr 2): the run ends, or stops naming the divergence,
    without a matplotlib or box-check traceback."""
    import torch
    adapter = backends.load_trainer("torch")
    real_step = adapter.train_step

    def blows_up(net, *args, **kwargs):
        figures = real_step(net, *args, **kwargs)
        with torch.no_grad():
            for name, parameter in net.named_parameters():
                if name.startswith(("bbox_", "cls_")):
                    parameter.mul_(1e6)
        return figures

    monkeypatch.setattr(adapter, "train_step", blows_up)
    code = run_train(tiny_data, tmp_path / "run", "--lr", "2")
    err = capsys.readouterr().err
    assert "Traceback" not in err and code in (0, 1)
    assert code == 1 or (tmp_path / "run" / "predictions.png").is_file()


# ---- R48: the operating system says no ----------------------------------------------------------------

@needs_torch
def test_out_naming_a_file_or_a_path_under_a_file_R48(tiny_data, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert run_train(tiny_data, tmp_path / "file") == 2
    assert f"--out {tmp_path / 'file'} is a file, not a folder" in _error(capsys)
    assert run_train(tiny_data, tmp_path / "file" / "run") == 2
    assert "Not a directory" in _error(capsys)


@needs_torch
def test_read_only_place_and_full_disk_R48(tiny_data, tmp_path, monkeypatch, capsys):
    import pathlib
    real_mkdir = pathlib.Path.mkdir

    def refuses(self, *args, **kwargs):
        if self.name == "run":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", refuses)
    assert run_train(tiny_data, tmp_path / "run") == 2
    assert f"cannot use {tmp_path / 'run'}: Permission denied" in _error(capsys)
    monkeypatch.undo()
    monkeypatch.setattr(pathlib.Path, "write_bytes", lambda self, data: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", str(self))))
    assert run_train(tiny_data, tmp_path / "full") == 2
    assert "No space left on device" in _error(capsys)
    assert not [p.name for p in (tmp_path / "full").iterdir() if p.name.endswith(".tmp")]  # nothing half-written
    monkeypatch.undo()
    assert run_train(tiny_data, tmp_path / "full") == 0  # and the folder is reusable


@needs_torch
def test_a_second_ctrl_c_stops_at_once_in_one_line_R48(tiny_data, tmp_path, monkeypatch, capsys):
    class Twice:
        def __enter__(self):
            raise KeyboardInterrupt

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(loop, "_StopFlag", Twice)
    assert run_train(tiny_data, tmp_path / "run") == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "stopped at once" in err


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "weights.safetensors"
    from multissd import save_weights
    save_weights(backends.load_nn("numpy").TinySSD(1, seed=0), path)
    return path


def test_predict_and_evaluate_out_problems_R48(weights_file, tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.new("RGB", (64, 64)).save(image)
    (tmp_path / "taken").write_text("x")
    assert predict.main([str(image), "--weights", str(weights_file), "--backend", "numpy",
                         "--out", str(tmp_path / "taken")]) == 2
    assert f"cannot use {tmp_path / 'taken'}" in _error(capsys)


# ---- R52, R54: evaluate and predict --------------------------------------------------------------------

def test_evaluate_checks_the_weights_before_the_data_R52(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(inference, "load_splits", lambda *a, **k: pytest.fail("the data was loaded first"))
    assert evaluate.main(["--weights", str(tmp_path / "missing.safetensors"), "--backend", "numpy"]) == 2
    assert f"Weights file not found: {tmp_path / 'missing.safetensors'}" in _error(capsys)


def test_a_large_photo_is_drawn_scaled_down_R54(weights_file, tmp_path, capsys):
    photo = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000), (30, 90, 200)).save(photo)
    assert predict.main([str(photo), "--weights", str(weights_file), "--backend", "numpy", "--out", str(tmp_path)]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    with Image.open(tmp_path / "big_detections.png") as drawn:
        assert max(drawn.size) <= 1024 and abs(drawn.size[0] / drawn.size[1] - 1.5) < 0.01
    (_, _, rows), = predict.predict_images([photo], weights_file, "numpy", min_detections=1)[0]
    assert line["box"] == [round(float(v), 1) for v in rows[0, 2:]]  # still in the photo's own pixels


def test_sixteen_bit_photo_is_read_scaled_R53(tmp_path):
    grey = np.full((64, 64), 40000, np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.png")
    pixels = np.asarray(predict.read_image(tmp_path / "g.png"))
    assert pixels.shape == (64, 64, 3) and pixels.max() == round(40000 / 65535 * 255)


# ---- R55, R56: files written --------------------------------------------------------------------------

def test_stale_temporary_files_are_removed_and_modes_are_usual_R55_R56(weights_file, tmp_path):
    from multissd import save_weights
    stale = tmp_path / ".weights.safetensors.abc123.tmp"
    stale.write_bytes(b"x" * 1000)  # what a write killed half-way leaves
    path = save_weights(backends.load_nn("numpy").TinySSD(1, seed=0), tmp_path / "weights.safetensors")
    assert not stale.exists()
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # mkstemp made it 0o600


# ---- a mistake is one line; a bug keeps its traceback (issue #26) ----------------------------------

def _fails_in_the_loop(error: BaseException):
    def learning_rate(*args, **kwargs):
        raise error
    return learning_rate


@needs_torch
def test_a_bug_inside_the_training_loop_keeps_its_traceback(tiny_data, tmp_path, monkeypatch):
    """A ``TypeError`` multissd did not raise on purpose (a planted bug in the loop) is not dressed as
    a user error: it propagates out of ``main`` with its traceback (exit 1 from the console script)."""
    monkeypatch.setattr(loop, "learning_rate", _fails_in_the_loop(TypeError("unsupported operand type(s)")))
    with pytest.raises(TypeError, match="unsupported operand"):
        run_train(tiny_data, tmp_path / "run")


@needs_torch
def test_a_deliberate_type_error_inside_the_loop_stays_one_line(tiny_data, tmp_path, monkeypatch, capsys):
    from multissd.errors import InputTypeError
    monkeypatch.setattr(loop, "learning_rate", _fails_in_the_loop(InputTypeError("Expected a number; received 'x'")))
    assert run_train(tiny_data, tmp_path / "run") == 2
    assert _error(capsys) == "error: Expected a number; received 'x'"


def test_multissd_debug_shows_the_traceback_of_a_mistake(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTISSD_DEBUG", "1")
    with pytest.raises(ValueError, match="Weights file not found"):
        evaluate.main(["--weights", str(tmp_path / "missing.safetensors"), "--backend", "numpy"])


def test_config_errors_name_the_field_from_python_and_the_option_from_the_command_line(capsys):
    from multissd.training import TrainConfig
    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0; received -1"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match=r"^Expected neg_pos_ratio > 0"):
        TrainConfig(loss={"neg_pos_ratio": -2.0})
    assert train.main(["--lr", "-1", "--backend", "numpy"]) == 2
    assert _error(capsys) == "error: --lr must be a finite number > 0; received -1.0"


def test_every_error_multissd_raises_on_purpose_is_marked_as_its_own():
    """No ``raise ValueError(...)``/``raise TypeError(...)`` is left in multissd: a deliberate error is
    an :class:`~multissd.errors.InputError`/``InputTypeError`` (one line on a command line), and only
    the contract machinery (``dispatch.py``: a backend written against its contract) raises plain ones."""
    import ast
    from pathlib import Path

    import multissd
    plain = []
    for path in sorted(Path(multissd.__file__).parent.rglob("*.py")):
        if path.name == "dispatch.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name)
                    and node.exc.func.id in ("ValueError", "TypeError")):
                plain.append(f"{path.name}:{node.lineno}")
    assert plain == []
