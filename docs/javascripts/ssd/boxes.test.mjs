// node --test for the page's box math, against golden cases from the NumPy reference
// (tools/browser_golden.py; the path of the JSON file in $MULTISSD_GOLDEN). Integers exactly, floats
// within 1e-5. Run by tests/test_browser.py.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  assign_anchor_to_bbox, batched_nms, box_iou, class_probabilities, multibox_detection,
  multibox_detection_per_class, multibox_prior, multibox_target_labels, nms, offset_inverse,
} from "./boxes.js";
import { resize_bilinear } from "./resize.js";

const golden = JSON.parse(readFileSync(process.env.MULTISSD_GOLDEN, "utf8"));
const f32 = (values) => Float32Array.from(values);

function close(actual, expected, what, tolerance = 1e-5) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const scale = Math.max(1, Math.abs(expected[i]));
    assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance * scale,
      `${what}[${i}]: ${actual[i]} against NumPy's ${expected[i]}`);
  }
}

test("anchors equal NumPy's multibox_prior bit for bit", () => {
  for (const c of golden.anchors) {
    assert.deepEqual(Array.from(multibox_prior(c.height, c.width, c.sizes, c.ratios)), Array.from(f32(c.anchors)));
  }
});

test("IoU", () => {
  for (const c of golden.iou) close(box_iou(f32(c.boxes1), f32(c.boxes2)), c.iou, "iou");
});

test("offset decoding, clamped before exp", () => {
  for (const c of golden.decode) close(offset_inverse(f32(c.anchors), f32(c.offsets)), c.boxes, "boxes");
});

test("class probabilities: softmax and sigmoid heads", () => {
  for (const c of golden.probabilities) close(class_probabilities(f32(c.logits), c.columns, c.head), c.probs, c.head);
});

test("NMS and per-class NMS keep NumPy's boxes in NumPy's order (tied scores: the lower index)", () => {
  for (const c of golden.nms) {
    const boxes = f32(c.boxes), scores = f32(c.scores);
    assert.deepEqual(nms(boxes, scores, c.threshold), c.keep);
    assert.deepEqual(batched_nms(boxes, scores, c.labels, c.threshold), c.batched);
  }
});

test("the book's multibox_detection", () => {
  for (const c of golden.detection) {
    const rows = multibox_detection(f32(c.probs), c.columns, f32(c.offsets), f32(c.anchors));
    assert.deepEqual(rows.map((r) => r[0]), c.book.map((r) => r[0]), "classes");
    close(rows.flat(), c.book.flat(), "rows");
  }
});

test("multibox_detection_per_class", () => {
  for (const c of golden.detection) {
    const found = multibox_detection_per_class(f32(c.probs), c.columns, f32(c.offsets), f32(c.anchors));
    assert.deepEqual(found.labels, c.per_class.labels);
    close(found.scores, c.per_class.scores, "scores");
    close(found.boxes.flat(), c.per_class.boxes.flat(), "boxes");
  }
});

test("the book's anchor assignment and multibox_target's class labels", () => {
  for (const c of golden.assignment) {
    const labels = f32(c.labels), truth = new Float32Array(labels.length / 5 * 4);
    for (let j = 0; j < labels.length / 5; j++) truth.set(labels.slice(5 * j + 1, 5 * j + 5), 4 * j);
    assert.deepEqual(Array.from(assign_anchor_to_bbox(truth, f32(c.anchors))), c.assignment);
    assert.deepEqual(Array.from(multibox_target_labels(f32(c.anchors), labels)), c.class_labels);
  }
});

test("Pillow's bilinear resize, to the byte", () => {
  for (const c of golden.resize) {
    const out = resize_bilinear(Uint8Array.from(c.rgb), c.width, c.height, c.out_width, c.out_height);
    assert.deepEqual(Array.from(out), c.resized, `${c.width}x${c.height} -> ${c.out_width}x${c.out_height}`);
  }
});
