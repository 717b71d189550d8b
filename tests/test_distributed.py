"""Data parallelism on the frameworks' own launchers: torchrun (DistributedDataParallel, gloo) and
paddle.distributed.launch (paddle.DataParallel), two CPU processes against one."""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKENDS

from multissd import predict, train
from multissd.data import generate_bananas
from multissd.weights import read_weights

# Two processes with synchronised batch norm against one: the same global batch, the same seed,
# two steps. What differs is the order of the floating-point reductions (the batch-norm statistics
# of the 0..255 input's first layer and the first convolution's gradient, sums over many pixels, most).
# Measured with the default (light) augmentation: largest |difference| of a parameter 1.4e-4 (torch;
# 8e-5 without augmentation) and about 1e-6 (paddle); running variances within 6e-4 of their value.
# The SSD recipe's SGD in float32: AdamW divides every gradient by its own running size, which turns
# the reduction-order rounding of a gradient that is ~0 (the convolutions' biases before batch norm)
# into steps of about lr in either direction, and bfloat16 rounds far coarser than the reductions.
RTOL, ATOL = 1e-3, 5e-4
COMMON = ["--batch-size", "4", "--epochs", "1", "--no-progress", "--sync-bn", "--recipe", "ssd", "--precision", "fp32"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return generate_bananas(tmp_path_factory.mktemp("bananas"), seed=5, sizes={"train": 8, "val": 4}, workers=1,
                            image_size=64)


def launcher(backend: str, processes: int) -> list[str]:
    if backend == "torch":
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "-m", "multissd.train"]
    script = shutil.which("multissd-train") or str(Path(train.__file__))
    return [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(processes), script]


def launch(backend, processes, args, cwd, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log_dir = ["--log_dir", str(cwd / "paddle_logs")] if backend == "paddle" else []
    command = launcher(backend, processes)
    command = command[:3] + log_dir + command[3:] if backend == "paddle" else command
    return subprocess.run(command + ["--backend", backend] + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def assert_same_weights(a_path, b_path) -> None:
    a, _ = read_weights(a_path)
    b, _ = read_weights(b_path)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("backend", [b for b in ("torch", "paddle") if b in BACKENDS])
def test_two_processes_train_the_same_model_as_one(backend, tiny_data, tmp_path, capsys):
    assert train.main(["--backend", backend, "--data", str(tiny_data), "--out", str(tmp_path / "one"), *COMMON]) == 0
    done = launch(backend, 2, ["--data", str(tiny_data), "--out", str(tmp_path / "two"), *COMMON], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_same_weights(tmp_path / "one" / "weights.safetensors", tmp_path / "two" / "weights.safetensors")
    # rank 0 alone wrote the run folder; its metrics count every image once
    (one,), (two,) = (list(csv.DictReader(open(tmp_path / name / "metrics.csv"))) for name in ("one", "two"))
    for key in ("loss", "class_err", "bbox_mae", "val_class_err", "val_bbox_mae", "val_top1_iou50", "val_map_50"):
        assert float(two[key]) == pytest.approx(float(one[key]), rel=1e-3, abs=1e-6), key
    # the checkpoint of a distributed run continues in a distributed run, and predicts on any backend
    resumed = launch(backend, 2, ["--resume", str(tmp_path / "two"), "--epochs", "2", "--no-progress"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert len((tmp_path / "two" / "metrics.csv").read_text().splitlines()) == 3
    image = str(tiny_data / "bananas_val" / "images" / "0.png")
    assert predict.main([image, "--weights", str(tmp_path / "two" / "weights.safetensors"), "--backend", "numpy",
                         "--out", str(tmp_path / "pred")]) == 0


@pytest.mark.parametrize("backend", [b for b in ("torch", "paddle") if b in BACKENDS])
def test_a_killed_rank_makes_the_launcher_fail_not_hang(backend, tiny_data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = launcher(backend, 2)
    if backend == "paddle":
        command = command[:3] + ["--log_dir", str(tmp_path / "paddle_logs")] + command[3:]
    command += ["--backend", backend, "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--batch-size", "4",
                "--epochs", "500", "--no-progress"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "metrics.csv").is_file():  # training is under way
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2
        os.kill(int(workers[1]), signal.SIGKILL)
        assert process.wait(timeout=90) != 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
