"""Train the lesson 9 page's classifiers on the synthetic fruit data and save their weights here.

    python docs/weights/make_classifiers.py            # about 10 minutes on a 2-core CPU

The largest-object model (a class and a box from one head; loss: L1 of the box in pixels + 20 x
cross-entropy, the lesson's) and the multi-label classifier (binary cross-entropy per class), on
TinySSD's base network (``multissd.ClassifierSpec``), trained with torch and Adam (lr 1e-3, the
lesson's optimiser) on the fruit training split (1000 images of 256 x 256, seed 0). Prints the
validation figures the page quotes and writes ``largest.safetensors`` and ``multilabel.safetensors``
(``multissd.save_weights``; every backend loads them with ``multissd.load_weights``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

import multissd
from multissd.data import bananas

HERE = Path(__file__).resolve().parent
EPOCHS, BATCH, LR, SIZE = 8, 32, 1e-3, 256


def largest_objects(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image the class ``(N,)`` and normalised box ``(N, 4)`` of its largest object."""
    area = (labels[..., 3] - labels[..., 1]) * (labels[..., 4] - labels[..., 2])
    area = np.where(labels[..., 0] >= 0, area, -1)
    rows = labels[np.arange(len(labels)), area.argmax(axis=1)]                 # (N, 5)
    return rows[:, 0].astype(np.int64), rows[:, 1:].astype(np.float32)


def present(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per image which classes it holds: float32 ``(N, Q)`` of 0/1."""
    out = np.zeros((len(labels), num_classes), np.float32)
    for i, label in enumerate(labels):
        out[i, label[label[:, 0] >= 0, 0].astype(int)] = 1
    return out


def loss_of(task, out, target):
    if task == "largest":
        cls_logits, box = out
        classes, boxes = target
        return torch.nn.functional.l1_loss(box * SIZE, boxes * SIZE) + 20 * torch.nn.functional.cross_entropy(
            cls_logits, classes)
    return torch.nn.functional.binary_cross_entropy_with_logits(out, target)


def targets(task, labels, num_classes):
    if task == "largest":
        classes, boxes = largest_objects(labels)
        return torch.from_numpy(classes), torch.from_numpy(boxes)
    return torch.from_numpy(present(labels, num_classes))


def evaluate(task, net, split) -> str:
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(split.images.astype(np.float32)))
    if task == "largest":
        classes, boxes = largest_objects(split.labels)
        accuracy = (out[0].argmax(dim=1).numpy() == classes).mean()
        l1 = np.abs(out[1].numpy() - boxes).mean() * SIZE
        return f"largest object: class accuracy {accuracy:.1%}, box L1 {l1:.1f} pixels"
    truth = present(split.labels, 3)
    guess = (torch.sigmoid(out).numpy() > 0.5).astype(np.float32)
    return (f"multi-label: {(guess == truth).mean():.1%} of the labels right, "
            f"{(guess == truth).all(axis=1).mean():.1%} of the images exactly")


def main() -> int:
    multissd.use_backend("torch")
    torch.manual_seed(0)
    train, val = bananas(kind="fruit", progress=print)
    rng = np.random.default_rng(0)
    for task in ("largest", "multilabel"):
        spec = multissd.ClassifierSpec(task=task, num_classes=len(train.class_names))
        net = multissd.Classifier(spec, seed=0)
        optimizer = torch.optim.Adam(net.parameters(), lr=LR)
        started = time.perf_counter()
        for epoch in range(EPOCHS):
            net.train()
            order = rng.permutation(len(train))
            for start in range(0, len(order), BATCH):
                batch = order[start:start + BATCH]
                X = torch.from_numpy(train.images[batch].astype(np.float32))
                loss = loss_of(task, net(X), targets(task, train.labels[batch], spec.num_classes))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            print(f"{task} epoch {epoch + 1}: loss {loss.item():.3f} | {evaluate(task, net, val)}", flush=True)
        print(f"{task}: {time.perf_counter() - started:.0f} s")
        multissd.save_weights(net, HERE / f"{task}.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
