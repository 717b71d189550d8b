"""Train the lesson 9 page's models before its full SSD on the synthetic fruit data and save their
weights here.

    python docs/weights/make_classifiers.py                    # all four, about an hour on 2 CPU cores
    python docs/weights/make_classifiers.py grid largest_lesson   # some of them
    python docs/weights/make_classifiers.py --evaluate largest    # the validation figures of the saved weights

On TinySSD's base network (``multissd.ClassifierSpec``), trained with torch and Adam (lr 1e-3, the
lesson's optimiser), batches of 32, 8 epochs of the fruit training split (1000 images of 256 x 256,
seed 0):

- ``largest``: the largest object (a class and a box from a global max pool and one linear layer;
  loss: L1 of the box in pixels + 20 x cross-entropy, the lesson's);
- ``largest_lesson``: the same task and loss with the lesson's ``head_reg4`` (the base network's map
  max-pooled to 7 x 7, flattened, linear 256, batch norm, dropout 0.5 twice);
- ``multilabel``: a sigmoid per class (binary cross-entropy);
- ``grid``: the lesson's ``SSD_Head`` on a 4 x 4 grid of 16 anchors (class bias -3, dropout 0.25),
  its ``ssd_loss``: per image the L1 distance of the ``actn_to_bb`` boxes of the positive anchors
  (matched by ``map_to_ground_truth`` at 0.4) plus the binary cross-entropy of every anchor divided
  by the number of classes, summed over the batch.

Prints the validation figures the page quotes, one line per epoch (the log is committed beside the
weights as ``classifiers.log``), and writes ``<name>.safetensors`` (``multissd.save_weights``; every
backend loads them with ``multissd.load_weights``).
"""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import numpy as np
import torch

import multissd
from multissd.data import bananas
from multissd.detection import batch_detections, split_targets
from multissd.metrics import mean_average_precision

HERE = Path(__file__).resolve().parent
EPOCHS, BATCH, LR, SIZE = 8, 32, 1e-3, 256
SPECS = {
    "largest": dict(task="largest"),
    "largest_lesson": dict(task="largest", head="lesson", dropout=0.5),
    "multilabel": dict(task="multilabel"),
    "grid": dict(task="grid", dropout=0.25),
}


@functools.lru_cache(maxsize=None)
def grid():
    """The 16 anchors: ``corners (16, 4), centres (16, 4), grid_sizes (16, 1)`` (torch tensors)."""
    return multissd.grid_anchors((4,), (1.0,), ((1.0, 1.0),))


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


def grid_loss(out, labels, num_classes):
    """The lesson's ``ssd_loss`` over a batch: per image, L1 of the positive anchors' boxes (mean over
    their coordinates) + BCE of every anchor and class / ``num_classes``; summed over the images."""
    cls_logits, activations = out                                           # (B, 16, Q + 1), (B, 16, 4)
    corners, _, grid_sizes = grid()
    bbox_labels, bbox_masks, cls_labels = multissd.multibox_target(corners, labels, iou_threshold=0.4, coding=None,
                                                                   matching="lesson")
    batch = cls_logits.shape[0]
    boxes = multissd.actn_to_bb(activations, corners, grid_sizes)           # (B, 16, 4)
    masks = bbox_masks.reshape(batch, -1, 4)
    loc = ((boxes - bbox_labels.reshape(batch, -1, 4)).abs() * masks).sum(dim=(1, 2)) / masks.sum(dim=(1, 2)).clamp(min=1)
    clas = multissd.binary_focal_loss(cls_logits, cls_labels, reduction="none").sum(dim=(1, 2)) / num_classes
    return (loc + clas).sum()


def loss_of(task, out, target):
    if task == "grid":
        return grid_loss(out, *target)
    if task == "largest":
        cls_logits, box = out
        classes, boxes = target
        return torch.nn.functional.l1_loss(box * SIZE, boxes * SIZE) + 20 * torch.nn.functional.cross_entropy(
            cls_logits, classes)
    return torch.nn.functional.binary_cross_entropy_with_logits(out, target)


def targets(task, labels, num_classes):
    if task == "grid":
        return torch.from_numpy(labels.astype(np.float32)), num_classes
    if task == "largest":
        classes, boxes = largest_objects(labels)
        return torch.from_numpy(classes), torch.from_numpy(boxes)
    return torch.from_numpy(present(labels, num_classes))


def evaluate(task, net, split) -> str:
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(split.images.astype(np.float32)))
    if task == "grid":
        corners, _, grid_sizes = grid()
        boxes = multissd.actn_to_bb(out[1], corners, grid_sizes)            # (N, 16, 4)
        probs = multissd.class_probabilities(out[0], "sigmoid").permute(0, 2, 1)   # (N, C, 16)
        preds = batch_detections(corners[None].numpy(), probs.numpy(), boxes.reshape(len(boxes), -1).numpy(),
                                 (SIZE, SIZE), coding=None)
        result = mean_average_precision(preds, split_targets(split))
        return f"16-anchor grid: mAP@0.5 {result['map_50']:.3f}"
    if task == "largest":
        classes, boxes = largest_objects(split.labels)
        accuracy = (out[0].argmax(dim=1).numpy() == classes).mean()
        l1 = np.abs(out[1].numpy() - boxes).mean() * SIZE
        return f"largest object: class accuracy {accuracy:.1%}, box L1 {l1:.1f} pixels"
    truth = present(split.labels, 3)
    guess = (torch.sigmoid(out).numpy() > 0.5).astype(np.float32)
    return (f"multi-label: {(guess == truth).mean():.1%} of the labels right, "
            f"{(guess == truth).all(axis=1).mean():.1%} of the images exactly")


def main(argv=None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    only_evaluate = "--evaluate" in names
    names = [name for name in names if name != "--evaluate"] or list(SPECS)
    unknown = [name for name in names if name not in SPECS]
    if unknown:
        print(f"unknown model {unknown[0]!r}; expected some of {list(SPECS)}", file=sys.stderr)
        return 2
    multissd.use_backend("torch")
    train, val = bananas(kind="fruit", progress=print)
    if only_evaluate:
        for name in names:
            net = multissd.load_model(HERE / f"{name}.safetensors")
            print(f"{name} saved weights | {evaluate(net.spec.task, net, val)}", flush=True)
        return 0
    for name in names:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        spec = multissd.ClassifierSpec(num_classes=len(train.class_names), **SPECS[name])
        task = spec.task
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
            print(f"{name} epoch {epoch + 1}: loss {loss.item():.3f} | {evaluate(task, net, val)}", flush=True)
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
        multissd.save_weights(net, HERE / f"{name}.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
