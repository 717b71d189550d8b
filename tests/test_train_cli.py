"""Training and prediction from the command line, on tiny data: artefacts, resume, Ctrl-C, NaN, predict."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import BACKENDS

from multissd import backends, predict, train, training
from multissd.model import BOOK_INIT
from multissd.training import loop
from multissd.data import generate_bananas
from multissd.weights import read_weights

TRAINERS = [n for n in ("torch", "paddle") if n in BACKENDS]
ARTEFACTS = ("weights.safetensors", "config.json", "metrics.csv", "curves.png", "predictions.png",
             "checkpoint.safetensors")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return generate_bananas(tmp_path_factory.mktemp("bananas"), seed=5, sizes={"train": 12, "val": 4}, workers=1,
                            image_size=64)


def run_train(tiny_data, out, *extra, backend="torch"):
    return train.main(["--backend", backend, "--data", str(tiny_data), "--out", str(out), "--batch-size", "4",
                       "--epochs", "1", "--no-progress", *extra])


def metrics(run):
    with open(run / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("backend", TRAINERS)
def test_training_smoke_writes_every_artefact(tiny_data, tmp_path, backend, capsys):
    assert run_train(tiny_data, tmp_path / "run", backend=backend) == 0
    for name in ARTEFACTS:
        assert (tmp_path / "run" / name).is_file(), name
    rows = metrics(tmp_path / "run")
    assert len(rows) == 1 and set(rows[0]) == set(training.METRIC_COLUMNS)
    assert float(rows[0]["examples_per_s"]) > 0 and np.isfinite(float(rows[0]["loss"]))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["backend"] == backend and config["image_size"] == [64, 64] and config["recipe"] == "fastai"
    assert (config["optimizer"], config["lr"], config["lr_schedule"], config["loss"]["neg_pos_ratio"]) == (
        "adamw", 0.004, "onecycle", 3.0)
    assert config["precision"] == ("bf16" if backend == "torch" and _bf16_is_fast() else "fp32")
    out = capsys.readouterr()
    assert "epoch 1/1: loss" in out.out and "examples/s" in out.out


def _bf16_is_fast() -> bool:
    import torch
    return torch.backends.mkldnn.is_available() and any(
        getattr(torch.cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def test_numpy_cannot_train(tiny_data, tmp_path, capsys):
    assert run_train(tiny_data, tmp_path / "run", backend="numpy") == 2
    assert "cannot train them" in capsys.readouterr().err and "--backend torch or --backend paddle" in \
        capsys.readouterr().err + "--backend torch or --backend paddle"


def test_existing_run_folder_is_not_overwritten(tiny_data, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "something").write_text("x")
    assert run_train(tiny_data, tmp_path / "run") == 2
    assert "exists and is not empty" in capsys.readouterr().err


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")
def test_resume_after_an_epoch_matches_an_uninterrupted_run_R38(tiny_data, tmp_path):
    # a constant rate: with the cosine schedule, raising --epochs on resume stretches the schedule
    # (a run stopped part-way keeps it: see the SIGKILL and Ctrl-C tests)
    assert run_train(tiny_data, tmp_path / "straight", "--epochs", "2", "--lr-schedule", "constant") == 0
    assert run_train(tiny_data, tmp_path / "split", "--epochs", "1", "--lr-schedule", "constant") == 0
    assert train.main(["--resume", str(tmp_path / "split"), "--epochs", "2", "--no-progress"]) == 0
    straight, split = metrics(tmp_path / "straight"), metrics(tmp_path / "split")
    for a, b in zip(straight, split):
        for column in ("loss", "class_err", "bbox_mae", "val_class_err", "val_bbox_mae", "val_top1_iou50"):
            assert a[column] == b[column], column
    a, _ = read_weights(tmp_path / "straight" / "weights.safetensors")
    b, _ = read_weights(tmp_path / "split" / "weights.safetensors")
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)  # bit-exact on CPU


class _StopAfter:
    """Stands in for Ctrl-C: 'pressed' once the given number of batches have run."""

    def __init__(self, batches):
        self.batches = batches

    def __call__(self):
        outer = self

        class Flag:
            def __enter__(self):
                self.reads = 0
                return self

            def __exit__(self, *exc):
                return False

            @property
            def requested(self):
                self.reads += 1
                return self.reads >= outer.batches
        return Flag()


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")
def test_ctrl_c_saves_mid_epoch_and_resume_is_exact_R38(tiny_data, tmp_path, monkeypatch, capsys):
    assert run_train(tiny_data, tmp_path / "straight", "--epochs", "2") == 0
    monkeypatch.setattr(loop, "_StopFlag", _StopAfter(4))  # stop in epoch 2, after its first batch
    assert run_train(tiny_data, tmp_path / "split", "--epochs", "2") == 130
    assert "Continue with --resume" in capsys.readouterr().err
    _, state = training.load_checkpoint(tmp_path / "split")
    assert (state["epoch"], state["batches_done"]) == (1, 1)
    monkeypatch.undo()
    assert train.main(["--resume", str(tmp_path / "split"), "--no-progress"]) == 0
    assert metrics(tmp_path / "straight") == [
        {**row, "examples_per_s": a["examples_per_s"], "epoch_seconds": a["epoch_seconds"], "data_seconds": a["data_seconds"]}
        for a, row in zip(metrics(tmp_path / "straight"), metrics(tmp_path / "split"))]


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")
def test_nan_loss_stops_naming_epoch_and_batch_R35(tiny_data, tmp_path, monkeypatch, capsys):
    from multissd import backends
    adapter = backends.load_trainer("torch")
    real_step, calls = adapter.train_step, {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 2, batch 2
            raise FloatingPointError("loss is nan")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(adapter, "train_step", poisoned)
    assert run_train(tiny_data, tmp_path / "run", "--epochs", "2") == 1
    err = capsys.readouterr().err
    assert "Non-finite loss at epoch 2, batch 2" in err and "kept its last good checkpoint" in err
    _, state = training.load_checkpoint(tmp_path / "run")
    assert state["epoch"] == 1 and len(metrics(tmp_path / "run")) == 1


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")
def test_truncated_checkpoint_names_the_path_R39(tiny_data, tmp_path, capsys):
    assert run_train(tiny_data, tmp_path / "run") == 0
    path = tmp_path / "run" / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    assert train.main(["--resume", str(tmp_path / "run"), "--no-progress"]) == 2
    assert f"Cannot read checkpoint {path}: it is truncated" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained_run(tiny_data, tmp_path_factory):
    if "torch" not in BACKENDS:
        pytest.skip("needs torch")
    run = tmp_path_factory.mktemp("trained") / "run"
    assert run_train(tiny_data, run, "--epochs", "2") == 0
    return run


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_on_any_backend_gives_the_same_detections(trained_run, tiny_data, tmp_path, backend, capsys):
    images = [str(tiny_data / "bananas_val" / "images" / f"{i}.png") for i in range(2)]
    code = predict.main([*images, "--weights", str(trained_run / "weights.safetensors"), "--backend", backend,
                         "--threshold", "0.0", "--out", str(tmp_path / "out")])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and {"image", "class", "class_id", "score", "box"} <= set(lines[0])
    assert lines[0]["class"] == "banana"
    assert (tmp_path / "out" / "0_detections.png").is_file()
    reference, _ = predict.predict_images(images, trained_run / "weights.safetensors", "numpy", threshold=0.0)
    mine, _ = predict.predict_images(images, trained_run / "weights.safetensors", backend, threshold=0.0)
    for (_, _, expected), (_, _, actual) in zip(reference, mine):
        np.testing.assert_array_equal(actual[:, 0], expected[:, 0])
        np.testing.assert_allclose(actual[:, 1:], expected[:, 1:], rtol=1e-4, atol=1e-3)


def test_predict_errors(trained_run, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert predict.main([str(bad), "--weights", str(trained_run / "weights.safetensors"), "--out", str(tmp_path)]) == 2
    assert f"Cannot read image {bad}" in capsys.readouterr().err
    from multissd import backends, save_weights
    other = tmp_path / "other.safetensors"
    save_weights(backends.load_nn("numpy").TinySSD(3), other)
    good = str(trained_run.parent / "x.png")
    from PIL import Image
    Image.new("RGB", (80, 60)).save(good)
    from multissd.weights import read_weights
    arrays, _ = read_weights(other)
    assert predict.main([good, "--weights", str(other), "--out", str(tmp_path)]) == 0  # a 3-class model is valid
    from safetensors.numpy import save_file
    arrays["cls_0.weight"] = arrays["cls_0.weight"][:5]
    save_file(arrays, str(tmp_path / "broken.safetensors"), metadata={"spec": backends.load_nn("numpy").TinySSD(3).spec.to_json()})
    assert predict.main([good, "--weights", str(tmp_path / "broken.safetensors"), "--out", str(tmp_path)]) == 2
    assert "Parameter 'cls_0.weight'" in capsys.readouterr().err


def test_help_explains_every_option():
    out = subprocess.run([sys.executable, "-m", "multissd.train", "--help"], capture_output=True, text=True).stdout
    for option in ("--backend", "--epochs", "--batch-size", "--lr", "--weight-decay", "--seed", "--device", "--data",
                   "--out", "--cls-loss", "--box-loss", "--resume"):
        assert option in out


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")
def test_killed_run_resumes_from_last_epoch_R38(tiny_data, tmp_path):
    """SIGKILL during epoch 2, then --resume: the same figures as an uninterrupted run."""
    import os
    import signal
    import time
    def command(out):  # both runs in fresh processes: same threads, so bit-identical arithmetic
        return [sys.executable, "-m", "multissd.train", "--backend", "torch", "--data", str(tiny_data), "--out",
                str(out), "--batch-size", "2", "--epochs", "3", "--no-progress"]

    subprocess.run(command(tmp_path / "straight"), check=True, capture_output=True)
    process = subprocess.Popen(command(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / "killed" / "metrics.csv").is_file() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    _, state = training.load_checkpoint(tmp_path / "killed")
    assert state["epoch"] in (1, 2)
    subprocess.run([sys.executable, "-m", "multissd.train", "--resume", str(tmp_path / "killed"), "--no-progress"],
                   check=True, capture_output=True)
    keep = ("loss", "class_err", "bbox_mae", "val_class_err", "val_bbox_mae", "val_top1_iou50")
    assert [{k: r[k] for k in keep} for r in metrics(tmp_path / "killed")] == \
        [{k: r[k] for k in keep} for r in metrics(tmp_path / "straight")]


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")
def test_crash_while_saving_a_checkpoint_keeps_the_previous_one_R37(tiny_data, tmp_path, monkeypatch, capsys):
    import pathlib
    real_write, calls = pathlib.Path.write_bytes, {"n": 0}

    def crashing(self, data):  # the one writer's write of a weights file's or checkpoint's bytes
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2's checkpoint (epoch 1 wrote a checkpoint and the weights)
            real_write(self, data[:100])
            raise OSError("power cut")
        return real_write(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", crashing)
    assert run_train(tiny_data, tmp_path / "run", "--epochs", "2") == 2  # one line, no traceback (R48)
    assert "error: power cut" in capsys.readouterr().err
    _, state = training.load_checkpoint(tmp_path / "run")
    assert state["epoch"] == 1
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")) == []


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")
def test_same_seed_same_figures_R40(tiny_data, tmp_path):
    assert run_train(tiny_data, tmp_path / "a", "--epochs", "2") == 0
    assert run_train(tiny_data, tmp_path / "b", "--epochs", "2") == 0
    keep = ("loss", "class_err", "bbox_mae", "val_class_err", "val_bbox_mae", "val_top1_iou50")
    assert [{k: r[k] for k in keep} for r in metrics(tmp_path / "a")] == \
        [{k: r[k] for k in keep} for r in metrics(tmp_path / "b")]


def test_learning_rate_schedules():
    cosine = training.TrainConfig(lr=0.2, lr_schedule="cosine", warmup=0.0)
    assert training.learning_rate(cosine, 0, 100) == pytest.approx(0.2)
    assert training.learning_rate(cosine, 50, 100) == pytest.approx(0.1)
    assert training.learning_rate(cosine, 99, 100) == pytest.approx(0.2 * 0.5 * (1 + np.cos(np.pi * 0.99)))
    steps = [training.learning_rate(cosine, s, 100) for s in range(100)]
    assert all(a > b for a, b in zip(steps, steps[1:])) and steps[-1] > 0
    book = training.TrainConfig(lr=0.2, lr_schedule="constant")
    assert {training.learning_rate(book, s, 100) for s in range(100)} == {0.2}
    with pytest.raises(ValueError, match="lr_schedule to be one of cosine, constant, onecycle; received 'step'"):
        training.TrainConfig(lr_schedule="step")
    warm = training.TrainConfig(lr=0.2, lr_schedule="cosine", warmup=0.1)
    rates = [training.learning_rate(warm, s, 100) for s in range(100)]
    assert rates[:10] == pytest.approx([0.2 * (s + 1) / 10 for s in range(10)]) and rates[10] == pytest.approx(0.2)
    assert all(a > b for a, b in zip(rates[10:], rates[11:]))
    cycle = training.TrainConfig(lr=0.2, lr_schedule="onecycle", warmup=0.0)  # fastai's fit_one_cycle: rise over 25%, then fall
    rates = [training.learning_rate(cycle, s, 100) for s in range(100)]
    assert rates[0] == pytest.approx(0.2 / 25) and rates[25] == pytest.approx(0.2) and max(rates) == rates[25]
    assert rates[-1] < 0.2 / 25 / 50 and all(a > b for a, b in zip(rates[25:], rates[26:]))


@pytest.mark.skipif("paddle" not in BACKENDS, reason="paddle not installed")
def test_compile_is_refused_on_paddle_with_the_reason(tiny_data, tmp_path, capsys):
    assert run_train(tiny_data, tmp_path / "run", "--compile", backend="paddle") == 2
    assert "--compile is available with --backend torch only" in capsys.readouterr().err


def test_book_recipe_gives_the_book_hyperparameters_and_options_override_it(tiny_data, tmp_path):
    assert run_train(tiny_data, tmp_path / "book", "--recipe", "book", "--box-weight", "30") == 0
    config = json.loads((tmp_path / "book" / "config.json").read_text())
    assert (config["recipe"], config["lr"], config["momentum"], config["lr_schedule"], config["augment"]) == \
        ("book", 0.2, 0.0, "constant", "none")
    assert config["loss"]["neg_pos_ratio"] is None and config["loss"]["box_weight"] == 30.0
    assert run_train(tiny_data, tmp_path / "nomining", "--neg-pos-ratio", "0", "--lr", "0.01") == 0
    config = json.loads((tmp_path / "nomining" / "config.json").read_text())
    assert config["loss"]["neg_pos_ratio"] is None and config["lr"] == 0.01 and config["momentum"] == 0.9


@pytest.mark.parametrize("backend", TRAINERS)
def test_momentum_buffers_are_checkpointed_and_restored(tiny_data, tmp_path, backend):
    assert run_train(tiny_data, tmp_path / "run", "--recipe", "ssd", backend=backend) == 0
    weights, state = training.load_checkpoint(tmp_path / "run")
    assert set(state["momentum"]) == {n for n in weights if "running" not in n and "num_batches" not in n}
    adapter, nn = backends.load_trainer(backend), backends.load_nn(backend)
    model = nn.TinySSD(1, seed=0)
    optimizer = adapter.make_optimizer(model, 0.1, 0.0, 0.9)
    adapter.set_momentum(optimizer, model, state["momentum"])
    # a step with zero gradients moves each parameter by -lr * momentum * buffer
    before = nn.get_weights(model)
    images = np.zeros((1, 3, 64, 64), np.float32)
    anchors, cls_preds, bbox_preds = model(backends.load(backend).asarray(images))
    ((cls_preds * 0).sum() + (bbox_preds * 0).sum()).backward()
    optimizer.step()
    after = nn.get_weights(model)
    name = "blk_0.0.0.weight"
    np.testing.assert_allclose(after[name] - before[name], -0.1 * 0.9 * state["momentum"][name], rtol=1e-4, atol=1e-7)


def test_constant_schedule_is_saved_and_the_book_default_documented(tiny_data, tmp_path):
    assert run_train(tiny_data, tmp_path / "run", "--lr-schedule", "constant") == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["lr_schedule"] == "constant" and config["compile"] is False
    assert "constant: the book's fixed learning rate" in " ".join(train.parser().format_help().split())


def test_resuming_a_run_from_before_the_schedule_keeps_the_constant_rate(tiny_data, tmp_path):
    assert run_train(tiny_data, tmp_path / "run", "--lr-schedule", "constant") == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    del config["lr_schedule"]  # as written before the option existed
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    assert train.main(["--resume", str(tmp_path / "run"), "--epochs", "2", "--no-progress"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr_schedule"] == "constant"


def test_predict_reports_the_best_detection_below_threshold(trained_run, tiny_data, tmp_path, capsys):
    images = [str(tiny_data / "bananas_val" / "images" / f"{i}.png") for i in range(2)]
    weights = str(trained_run / "weights.safetensors")
    assert predict.main([*images, "--weights", weights, "--threshold", "1", "--out", str(tmp_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == images  # one per image: its best guess
    assert all(line["below_threshold"] for line in lines)
    everything, _ = predict.predict_images(images, weights, "numpy", threshold=0.0)
    assert [line["score"] for line in lines] == [round(float(rows[0, 1]), 4) for _, _, rows in everything]
    assert all((np.diff(rows[:, 1]) <= 0).all() for _, _, rows in everything)  # best first
    assert predict.main([*images, "--weights", weights, "--threshold", "1", "--min-detections", "0",
                         "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""
    assert predict.main([*images, "--weights", weights, "--min-detections", "-1", "--out", str(tmp_path)]) == 2
    assert "--min-detections must be a whole number >= 0; received -1" in capsys.readouterr().err


def test_evaluate_writes_the_table_json_and_curves(trained_run, tiny_data, tmp_path, capsys):
    from multissd import evaluate
    code = evaluate.main(["--weights", str(trained_run / "weights.safetensors"), "--data", str(tiny_data),
                          "--backend", "numpy", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "4 val images, backend numpy" in out and "AP50" in out and "banana" in out
    result = json.loads((tmp_path / "eval.json").read_text())
    assert set(evaluate.SUMMARY_KEYS) <= set(result) and set(result["per_class"]) == {"banana"}
    assert 0 <= result["map_50"] <= 1 and (tmp_path / "pr_curves.png").is_file()
    assert float(metrics(trained_run)[-1]["val_map_50"]) >= 0  # training reports it per epoch


@pytest.mark.parametrize("backend", TRAINERS)
def test_train_and_evaluate_on_several_classes(tmp_path_factory, tmp_path, backend, capsys):
    fruit = generate_bananas(tmp_path_factory.mktemp("fruit"), seed=1, sizes={"train": 8, "val": 4}, workers=1,
                             image_size=64, kind="fruit")
    assert run_train(fruit, tmp_path / "run", "--image-size", "96", backend=backend) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["class_names"] == ["banana", "apple", "orange"] and config["spec"]["num_classes"] == 3
    assert config["image_size"] == [96, 96] and config["augment"] == "light"
    from multissd import evaluate
    assert evaluate.main(["--weights", str(tmp_path / "run" / "weights.safetensors"), "--backend", backend]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("banana", "apple", "orange"))
    assert (tmp_path / "run" / "eval.json").is_file()


def test_recipe_book_is_the_books_run():
    """--recipe book: the book's hyper-parameters, its head initialisation (no RetinaNet prior) and
    its 20 epochs; the default recipe keeps the prior and 12 epochs; a given option wins."""
    book = train.config_from_args(train.parser().parse_args(["--recipe", "book", "--backend", "numpy"]))
    assert (book.lr, book.momentum, book.lr_schedule, book.augment, book.weight_decay) == (0.2, 0.0, "constant",
                                                                                         "none", 5e-4)
    assert book.loss["neg_pos_ratio"] is None and book.loss["box_weight"] == 1.0
    assert book.prior_prob == BOOK_INIT and book.model_spec().prior_prob == BOOK_INIT and book.epochs == 20
    default = train.config_from_args(train.parser().parse_args(["--backend", "numpy"]))
    assert default.prior_prob == 0.01 and default.epochs is None and default.lr == 0.004  # epochs: by the data
    assert (default.recipe, default.optimizer, default.batch_size) == ("fastai", "adamw", 16)
    assert training.DEFAULT_EPOCHS == 7  # the bananas' 1000 images: 441 steps of 16
    mixed = train.config_from_args(train.parser().parse_args(["--recipe", "book", "--prior-prob", "0.05",
                                                              "--epochs", "3", "--backend", "numpy"]))
    assert mixed.prior_prob == 0.05 and mixed.epochs == 3 and mixed.lr == 0.2


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_decode_book_runs_the_books_multibox_detection(trained_run, tiny_data, backend):
    """--decode book: the rows of the book's multibox_detection (NMS at 0.5, one class per anchor)
    that have a class, in pixels; the default per-class decoding is another function."""
    import multissd
    from PIL import Image
    image = tiny_data / "bananas_val" / "images" / "0.png"
    (_, _, rows), = predict.predict_images([image], trained_run / "weights.safetensors", backend, threshold=0.0,
                                           how="book")[0]
    net = multissd.load_model(trained_run / "weights.safetensors", backend="numpy")
    net.eval()
    pixels = np.asarray(Image.open(image).convert("RGB"), np.float32).transpose(2, 0, 1)[None]
    anchors, cls_preds, bbox_preds = net(pixels)
    probs = multissd.class_probabilities(cls_preds, net.spec.head).transpose(0, 2, 1)
    expected = multissd.multibox_detection(probs, bbox_preds, anchors, nms_threshold=0.5)[0]
    expected = expected[expected[:, 0] >= 0]
    expected[:, 2:] *= 64
    assert len(rows) == len(expected) > 0
    np.testing.assert_array_equal(rows[:, 0], expected[:, 0])
    np.testing.assert_allclose(rows[:, 1:], expected[:, 1:], rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="how to be one of"):
        predict.predict_images([image], trained_run / "weights.safetensors", backend, how="greedy")


def test_the_command_line_is_derived_from_the_config_fields():
    """One option per setting of ``TrainConfig`` and ``LossConfig`` (issue #26: no parallel tables):
    every field but the ones filled in from the data has its option, and the parser's defaults are
    "not given" -- the defaults a run gets are the recipe's and the dataclasses', which the help shows."""
    from dataclasses import fields

    from multissd.nn import LossConfig
    from multissd.training import TrainConfig
    from multissd.training.options import OPTIONS
    from_the_data = {"spec", "class_names", "loss"}
    wanted = {f.name for f in fields(TrainConfig)} - from_the_data
    wanted |= {f"loss.{f.name}" for f in fields(LossConfig)} - {"loss.focal_alpha", "loss.focal_gamma"}
    assert sorted(option.field for option in OPTIONS) == sorted(wanted)
    args = train.parser().parse_args([])
    assert all(getattr(args, option.dest) is None for option in OPTIONS)
    help_text = " ".join(train.parser().format_help().split())
    assert ("learning rate (the peak of --lr-schedule) (default from the recipe -- --recipe fastai: 0.004, --recipe "
            "ssd: 0.002, --recipe book: 0.2)") in help_text
    assert "SGD's L2 (the book's 5e-4), AdamW's decoupled (default from the recipe -- --recipe fastai: 0.05" in help_text
    assert "the zoom-out limit of --augment ssd or photo" in help_text and "(default: ssd 2, photo 4)" in help_text
    config = train.config_from_args(args)
    assert (config.lr, config.batch_size, config.weight_decay, config.epochs) == (0.004, 16, 0.05, None)
    assert config.loss == {**TrainConfig().loss}
