// The box math of the SSD chapter, a fourth time: in JavaScript, for the page that runs TinySSD in
// the reader's browser. The same functions, names and conventions as multissd/boxes.py (the
// contract) and multissd/backends/numpy/boxes.py (the reference it is tested against, with golden
// cases written by tools/browser_golden.py): corner boxes (xmin, ymin, xmax, ymax) normalised to
// [0, 1]; anchors in the book's order; ties broken by the lower index; NMS suppresses IoU > t.
//
// Every number is a float32, as in NumPy: each operation is rounded with Math.fround, so ties and
// thresholds fall where they fall in NumPy. A thresholds given as a JavaScript number is compared
// as the float32 it rounds to, as NumPy compares a float32 array with a Python float.
//
// Arrays: boxes are Float32Array of 4 numbers per box (N boxes: length 4N); scores Float32Array.
"use strict";

const f = Math.fround;

export const BACKGROUND = 0;
export const UNMATCHED = -1;
export const NOT_DETECTED = -1;
export const BOOK_OFFSETS = { center_scale: 10, size_scale: 5, eps: 1e-6, max_log_scale: Math.log(1000 / 16) };
export const BOOK_POS_THRESHOLD = 0.009999999;
export const BOOK_NMS_THRESHOLD = 0.5;
export const SCORE_THRESHOLD = 0.01;
export const NMS_THRESHOLD = 0.45;
export const TOPK_CANDIDATES = 400;
export const DETECTIONS_PER_IMAGE = 200;

// ---- anchors -----------------------------------------------------------------------------------

// The K widths and heights of one location's anchors (multissd.boxes.anchor_shapes): every size with
// ratios[0], then sizes[0] with ratios[1:]; width s * sqrt(r) * H / W, height s / sqrt(r).
export function anchor_shapes(sizes, ratios, in_height, in_width) {
  const root = ratios.map((r) => f(Math.sqrt(f(r))));
  const w = [], h = [];
  for (const s of sizes) { w.push(f(f(s) * root[0])); h.push(f(f(s) / root[0])); }
  for (const r of root.slice(1)) { w.push(f(f(sizes[0]) * r)); h.push(f(f(sizes[0]) / r)); }
  return { widths: w.map((v) => f(f(v * in_height) / in_width)), heights: h };
}

// multibox_prior: the anchors of a feature map of in_height x in_width cells -> Float32Array (H*W*K*4),
// row-major over the cells, the book's order within a cell.
export function multibox_prior(in_height, in_width, sizes, ratios) {
  const { widths, heights } = anchor_shapes(sizes, ratios, in_height, in_width);
  const k = widths.length, steps_h = f(1 / in_height), steps_w = f(1 / in_width);
  const out = new Float32Array(in_height * in_width * k * 4);
  let o = 0;
  for (let i = 0; i < in_height; i++) {
    const cy = f(f(i + 0.5) * steps_h);
    for (let j = 0; j < in_width; j++) {
      const cx = f(f(j + 0.5) * steps_w);
      for (let a = 0; a < k; a++) {
        const hw = f(widths[a] / 2), hh = f(heights[a] / 2);
        out[o++] = f(cx - hw); out[o++] = f(cy - hh); out[o++] = f(cx + hw); out[o++] = f(cy + hh);
      }
    }
  }
  return out;
}

// The anchors of a whole model (a TinySSDSpec's sizes and ratios on its feature maps).
export function model_anchors(spec, height, width) {
  const parts = [];
  feature_map_sizes(spec, height, width).forEach(([h, w], i) => {
    if (predicted(spec, i)) parts.push(multibox_prior(h, w, spec.sizes[i], spec.ratios[i]));
  });
  return concat(parts);
}

// (H, W) of each scale's feature map (multissd.model.TinySSDSpec.feature_map_sizes).
export function feature_map_sizes(spec, height, width) {
  const out = [];
  for (let i = 0; i < spec.base_channels.length; i++) { height = Math.floor(height / 2); width = Math.floor(width / 2); }
  out.push([height, width]);
  for (let i = 0; i < spec.block_channels.length; i++) {
    height = Math.floor(height / 2); width = Math.floor(width / 2); out.push([height, width]);
  }
  out.push([1, 1]);
  return out;
}

function predicted(spec, i) {
  const scales = spec.block_channels.length + 2;
  return !spec.predicted_scales || i >= scales - spec.predicted_scales;
}

function concat(arrays) {
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrays) { out.set(a, o); o += a.length; }
  return out;
}

// ---- IoU ---------------------------------------------------------------------------------------

function area(b, i) { return f(f(b[4 * i + 2] - b[4 * i]) * f(b[4 * i + 3] - b[4 * i + 1])); }

// IoU of box i of boxes1 and box j of boxes2 (0 where the union is 0), as NumPy computes it.
export function iou_pair(boxes1, i, boxes2, j) {
  const w = f(Math.max(f(Math.min(boxes1[4 * i + 2], boxes2[4 * j + 2]) - Math.max(boxes1[4 * i], boxes2[4 * j])), 0));
  const h = f(Math.max(f(Math.min(boxes1[4 * i + 3], boxes2[4 * j + 3]) - Math.max(boxes1[4 * i + 1], boxes2[4 * j + 1])), 0));
  const inter = f(w * h);
  const union = f(f(area(boxes1, i) + area(boxes2, j)) - inter);
  return union > 0 ? f(inter / union) : 0;
}

// box_iou: (N, 4) and (M, 4) -> Float32Array (N*M), row-major.
export function box_iou(boxes1, boxes2) {
  const n = boxes1.length / 4, m = boxes2.length / 4, out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[i * m + j] = iou_pair(boxes1, i, boxes2, j);
  return out;
}

// ---- offsets -----------------------------------------------------------------------------------

// offset_inverse: anchors (A*4) and offset predictions (A*4) -> predicted corner boxes (A*4); the
// book's coding (dx, dy scaled by 10, log dw, dh by 5, clamped before exp), or null: boxes already.
export function offset_inverse(anchors, offsets, coding = BOOK_OFFSETS) {
  if (coding === null) return Float32Array.from(offsets);
  const out = new Float32Array(anchors.length), cap = f(coding.max_log_scale);
  for (let a = 0; a < anchors.length / 4; a++) {
    const [x1, y1, x2, y2] = anchors.subarray(4 * a, 4 * a + 4);
    const cx = f(f(x1 + x2) / 2), cy = f(f(y1 + y2) / 2), w = f(x2 - x1), h = f(y2 - y1);
    const px = f(f(f(offsets[4 * a] * w) / coding.center_scale) + cx);
    const py = f(f(f(offsets[4 * a + 1] * h) / coding.center_scale) + cy);
    const pw = f(f(Math.exp(Math.min(f(offsets[4 * a + 2] / coding.size_scale), cap))) * w);
    const ph = f(f(Math.exp(Math.min(f(offsets[4 * a + 3] / coding.size_scale), cap))) * h);
    out[4 * a] = f(px - f(0.5 * pw)); out[4 * a + 1] = f(py - f(0.5 * ph));
    out[4 * a + 2] = f(px + f(0.5 * pw)); out[4 * a + 3] = f(py + f(0.5 * ph));
  }
  return out;
}

// ---- class probabilities -----------------------------------------------------------------------

// class_probabilities: logits (A*C, row per anchor) -> probabilities (A*C): a softmax over the C
// columns, or for a sigmoid head one sigmoid per object column and 1 - their largest as background.
export function class_probabilities(logits, num_columns, head = "softmax") {
  const out = new Float32Array(logits.length);
  for (let a = 0; a < logits.length / num_columns; a++) {
    const row = logits.subarray(a * num_columns, (a + 1) * num_columns);
    if (head === "softmax") {
      let top = -Infinity;
      for (const v of row) top = Math.max(top, v);
      const e = Array.from(row, (v) => f(Math.exp(f(v - top))));
      let total = 0;
      for (const v of e) total = f(total + v);
      e.forEach((v, c) => { out[a * num_columns + c] = f(v / total); });
    } else {
      let best = 0;
      for (let c = 1; c < num_columns; c++) {
        const p = sigmoid(row[c]);
        out[a * num_columns + c] = p;
        best = Math.max(best, p);
      }
      out[a * num_columns] = f(1 - best);
    }
  }
  return out;
}

export function sigmoid(x) { return f(1 / f(1 + f(Math.exp(-x)))); }

// ---- NMS ---------------------------------------------------------------------------------------

// Indices by decreasing score, ties by the lower index (a stable sort).
function by_score(scores, indices) {
  return indices.slice().sort((a, b) => (scores[b] - scores[a]) || (a - b));
}

// nms over the boxes of `indices` (positions into boxes and scores): the kept indices, best first.
// A box whose IoU with a kept box is above iou_threshold is suppressed (equal is kept).
export function nms(boxes, scores, iou_threshold, indices = null) {
  const threshold = f(iou_threshold);
  let order = by_score(scores, indices ?? [...Array(scores.length).keys()]);
  const keep = [];
  while (order.length) {
    const i = order[0];
    keep.push(i);
    order = order.slice(1).filter((j) => iou_pair(boxes, i, boxes, j) <= threshold);
  }
  return keep;
}

// batched_nms: NMS within each class of `labels`; every kept index, by decreasing score (ties: lower index).
export function batched_nms(boxes, scores, labels, iou_threshold, indices = null) {
  indices = indices ?? [...Array(scores.length).keys()];
  const keep = [];
  for (const c of [...new Set(indices.map((i) => labels[i]))].sort((a, b) => a - b)) {
    keep.push(...nms(boxes, scores, iou_threshold, indices.filter((i) => labels[i] === c)));
  }
  return by_score(scores, keep);
}

// ---- detection ---------------------------------------------------------------------------------

// multibox_detection (the book's, one image): probabilities (A*C, row per anchor), offsets (A*4),
// anchors (A*4) -> rows [class, score, x1, y1, x2, y2] for every anchor: the kept detections first
// (best first), then the rest in anchor order with class -1 (their score 1 - p below pos_threshold).
export function multibox_detection(probs, num_columns, offsets, anchors, nms_threshold = BOOK_NMS_THRESHOLD,
                                   pos_threshold = BOOK_POS_THRESHOLD, coding = BOOK_OFFSETS) {
  const count = anchors.length / 4, boxes = offset_inverse(anchors, offsets, coding);
  const conf = new Float32Array(count), cls = new Int32Array(count), floor = f(pos_threshold);
  for (let a = 0; a < count; a++) {
    let best = 1;
    for (let c = 2; c < num_columns; c++) if (probs[a * num_columns + c] > probs[a * num_columns + best]) best = c;
    conf[a] = probs[a * num_columns + best];
    cls[a] = best - 1;
  }
  const candidates = [...Array(count).keys()].filter((a) => conf[a] >= floor);
  const keep = nms(boxes, conf, nms_threshold, candidates);
  const kept = new Set(keep);
  const order = [...keep, ...[...Array(count).keys()].filter((a) => !kept.has(a))];
  return order.map((a, row) => {
    const score = conf[a] < floor ? f(1 - conf[a]) : conf[a];
    return [row < keep.length ? cls[a] : NOT_DETECTED, score, ...boxes.subarray(4 * a, 4 * a + 4)];
  });
}

// multibox_detection_per_class (one image), the detection libraries' post-processing: boxes clipped
// to the image; per class the topk_candidates best anchors scoring above score_threshold; NMS within
// each class; the detections_per_image best -> {boxes: [[x1, y1, x2, y2]], scores: [], labels: []}.
export function multibox_detection_per_class(probs, num_columns, offsets, anchors, score_threshold = SCORE_THRESHOLD,
                                             nms_threshold = NMS_THRESHOLD, topk_candidates = TOPK_CANDIDATES,
                                             detections_per_image = DETECTIONS_PER_IMAGE, coding = BOOK_OFFSETS) {
  const count = anchors.length / 4, floor = f(score_threshold);
  const boxes = offset_inverse(anchors, offsets, coding).map((v) => Math.min(Math.max(v, 0), 1));
  const ids = [], labels = [], scores = [];
  for (let c = 0; c < num_columns - 1; c++) {
    const column = Float32Array.from({ length: count }, (_, a) => probs[a * num_columns + c + 1]);
    for (const a of by_score(column, [...Array(count).keys()]).slice(0, topk_candidates)) {
      if (column[a] > floor) { ids.push(a); labels.push(c); scores.push(column[a]); }
    }
  }
  const candidate_boxes = new Float32Array(ids.length * 4);
  ids.forEach((a, n) => candidate_boxes.set(boxes.subarray(4 * a, 4 * a + 4), 4 * n));
  const keep = batched_nms(candidate_boxes, Float32Array.from(scores), labels, nms_threshold)
    .slice(0, detections_per_image);
  return {
    boxes: keep.map((n) => Array.from(candidate_boxes.subarray(4 * n, 4 * n + 4))),
    scores: keep.map((n) => scores[n]), labels: keep.map((n) => labels[n]), anchors: keep.map((n) => ids[n]),
  };
}

// ---- labelling anchors (the book's matching) ---------------------------------------------------

// assign_anchor_to_bbox: ground truth (G*4) and anchors (A*4) -> Int32Array (A) of the box each anchor
// is assigned (UNMATCHED: none): every anchor whose best IoU reaches iou_threshold takes that box;
// then, G times, the pair of largest IoU left (ties: the first in row-major order) is assigned and
// its anchor's row and box's column discarded.
export function assign_anchor_to_bbox(ground_truth, anchors, iou_threshold = 0.5) {
  const a = anchors.length / 4, g = ground_truth.length / 4, threshold = f(iou_threshold);
  const map = new Int32Array(a).fill(UNMATCHED);
  if (!a || !g) return map;
  const jaccard = Float64Array.from(box_iou(anchors, ground_truth));
  for (let i = 0; i < a; i++) {
    let best = 0;
    for (let j = 1; j < g; j++) if (jaccard[i * g + j] > jaccard[i * g + best]) best = j;
    if (jaccard[i * g + best] >= threshold) map[i] = best;
  }
  for (let n = 0; n < Math.min(a, g); n++) {
    let top = 0;
    for (let k = 1; k < a * g; k++) if (jaccard[k] > jaccard[top]) top = k;
    const anchor = Math.floor(top / g), box = top % g;
    map[anchor] = box;
    for (let i = 0; i < a; i++) jaccard[i * g + box] = -1;
    for (let j = 0; j < g; j++) jaccard[anchor * g + j] = -1;
  }
  return map;
}

// The class labels multibox_target gives one image's anchors: 0 background, else the class of the
// assigned box + 1. labels: rows [class, x1, y1, x2, y2] (a flat array, 5 per object).
export function multibox_target_labels(anchors, labels, iou_threshold = 0.5) {
  const g = labels.length / 5, truth = new Float32Array(4 * g);
  for (let j = 0; j < g; j++) truth.set(labels.slice(5 * j + 1, 5 * j + 5), 4 * j);
  const map = assign_anchor_to_bbox(truth, anchors, iou_threshold);
  return Int32Array.from(map, (box) => (box === UNMATCHED ? BACKGROUND : labels[5 * box] + 1));
}
