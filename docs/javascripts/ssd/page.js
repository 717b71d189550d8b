// "Try it: SSD in your browser" (docs/try.md): TinySSD, exported to ONNX by multissd.export when the
// site is built, run by ONNX Runtime Web (WebAssembly, served by this site: nothing from a CDN), its
// output decoded by boxes.js exactly as `python -m multissd.predict` decodes it, with live controls
// that redraw without running the model again. The page exposes what it computed as
// window.multissdResult (the detections, as predict reports them) and window.multissdPage (counts).
import * as B from "./boxes.js";
import { resize_bilinear } from "./resize.js";

const ROOT = new URL("../../", import.meta.url);          // the site's root
let ort = null;                                           // ONNX Runtime Web, imported on this page only
const COLORS = ["#ffffff", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
const DEFAULT_THRESHOLD = 0.9, MIN_DETECTIONS = 1;       // predict's defaults (the book's display threshold)

const state = {
  models: [], model: null, session: null, image: null, pixels: null, output: null, times: [],
  threshold: DEFAULT_THRESHOLD, nms: B.NMS_THRESHOLD, decode: "per-class", scale: 0, clicked: null,
  truth: null, mode: "detect",
};

function $(id) { return document.getElementById(id); }

async function loadModel(entry) {
  const bytes = await (await fetch(new URL(entry.file, ROOT))).arrayBuffer();
  state.session = await ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"] });
  state.model = entry;
  state.anchors = B.model_anchors(entry.spec, ...entry.image_size);
  $("ssd-scale").innerHTML = B.feature_map_sizes(entry.spec, ...entry.image_size)
    .map(([h, w], i) => `<option value="${i}">scale ${i}: ${h} x ${w} cells, sizes ${entry.spec.sizes[i].join(", ")}</option>`)
    .join("");
  state.scale = 0;
}

async function loadImage(source) {
  const image = new Image();
  image.src = source;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d", { willReadFrequently: true, colorSpace: "srgb" });
  context.drawImage(image, 0, 0);
  state.image = image;
  state.pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  state.truth = null; state.clicked = null;
}

// The model's forward on the current image, resized as predict resizes it (Pillow's bilinear).
async function runModel() {
  const [height, width] = state.model.image_size;
  const rgb = resize_bilinear(state.pixels, state.image.naturalWidth, state.image.naturalHeight, width, height, 4);
  const planar = new Float32Array(3 * height * width);
  for (let c = 0; c < 3; c++) for (let i = 0; i < height * width; i++) planar[c * height * width + i] = rgb[3 * i + c];
  const started = performance.now();
  const result = await state.session.run({ images: new ort.Tensor("float32", planar, [1, 3, height, width]) });
  state.times.push(performance.now() - started);
  const columns = state.model.spec.num_classes + 1;
  state.output = {
    anchors: result.anchors.data, offsets: result.bbox_preds.data, columns,
    probs: B.class_probabilities(result.cls_preds.data, columns, state.model.spec.head),
  };
}

// predict's decoding and reporting: rows [class, score, x1, y1, x2, y2] normalised, best first; those
// scoring >= the threshold, and the MIN_DETECTIONS best whatever they score.
function detections() {
  const { probs, columns, offsets, anchors } = state.output;
  let rows;
  if (state.decode === "book") {
    rows = B.multibox_detection(probs, columns, offsets, anchors, state.nms).filter((r) => r[0] >= 0);
  } else {
    const found = B.multibox_detection_per_class(probs, columns, offsets, anchors, B.SCORE_THRESHOLD, state.nms);
    rows = found.labels.map((label, n) => [label, found.scores[n], ...found.boxes[n]]);
  }
  return rows.filter((row, n) => row[1] >= Math.fround(state.threshold) || n < MIN_DETECTIONS);
}

// The candidates NMS saw that score at least the threshold (for "before NMS").
function candidates() {
  const { probs, columns, offsets, anchors } = state.output;
  const boxes = B.offset_inverse(anchors, offsets), rows = [];
  for (let a = 0; a < anchors.length / 4; a++) {
    for (let c = 1; c < columns; c++) {
      const score = probs[a * columns + c];
      if (score >= Math.fround(state.threshold)) rows.push([c - 1, score, ...boxes.subarray(4 * a, 4 * a + 4)]);
    }
  }
  return rows.sort((a, b) => b[1] - a[1]);
}

function toPixels(row, width, height) {
  const size = [width, height, width, height].map(Math.fround);
  return row.slice(2).map((v, i) => Math.fround(v * size[i]));
}

function drawBoxes(context, rows, scale, labels = true) {
  context.lineWidth = 2;
  context.font = "12px sans-serif";
  for (const row of rows) {
    const [x1, y1, x2, y2] = row.box.map((v) => v * scale);
    context.strokeStyle = row.color;
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    if (labels && row.text) {
      const w = context.measureText(row.text).width + 6;
      context.fillStyle = row.color;
      context.fillRect(x1, Math.max(0, y1 - 15), w, 15);
      context.fillStyle = "#000";
      context.fillText(row.text, x1 + 3, Math.max(11, y1 - 3));
    }
  }
}

function canvasFor(id) {
  const canvas = $(id), image = state.image;
  const scale = 480 / Math.max(image.naturalWidth, image.naturalHeight);  // small images drawn larger
  canvas.width = Math.round(image.naturalWidth * scale);
  canvas.height = Math.round(image.naturalHeight * scale);
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
  return { context, scale };
}

function className(id) { return state.model.class_names?.[id] ?? String(id); }

function render() {
  if (!state.output) return;
  const width = state.image.naturalWidth, height = state.image.naturalHeight;
  const kept = detections(), before = candidates();
  window.multissdResult = kept.map((row) => ({
    class: className(row[0]), class_id: row[0], score: row[1], box: toPixels(row, width, height),
    below_threshold: row[1] < Math.fround(state.threshold),
  }));
  const after = canvasFor("ssd-after");
  drawBoxes(after.context, kept.map((row) => ({
    box: toPixels(row, width, height), color: row[1] < Math.fround(state.threshold) ? "#ffd400" : COLORS[row[0] % 6],
    text: `${className(row[0])} ${row[1].toFixed(2)}`,
  })), after.scale);
  const shown = canvasFor("ssd-before");
  drawBoxes(shown.context, before.slice(0, 300).map((row) => ({ box: toPixels(row, width, height),
    color: COLORS[row[0] % 6] })), shown.scale, false);
  const anchors = drawAnchors(after), labelled = drawLabelling(after);
  const median = [...state.times].sort((a, b) => a - b)[Math.floor(state.times.length / 2)];
  $("ssd-status").textContent = `${kept.length} detection${kept.length === 1 ? "" : "s"} after NMS, ` +
    `${before.length} candidate box${before.length === 1 ? "" : "es"} before it (score >= ${state.threshold.toFixed(2)}); ` +
    `the model ran in ${median.toFixed(0)} ms here (median of ${state.times.length}).`;
  window.multissdPage = { after: kept.length, before: before.length, anchors_drawn: anchors.anchors,
                          assigned: labelled.assigned, truth: state.truth, scale: state.scale,
                          threshold: state.threshold, nms: state.nms, decode: state.decode,
                          model_ms: state.times.slice(), ready: true };
}

// The anchors of the chosen scale centred on the clicked cell (the book's figure of anchors at one pixel).
function drawAnchors({ context, scale }) {
  $("ssd-anchor-info").textContent = state.mode === "anchors" ? "Click the image to draw the anchors of a cell." : "";
  if (state.mode !== "anchors" || !state.clicked) return { anchors: 0 };
  const spec = state.model.spec, [h, w] = B.feature_map_sizes(spec, ...state.model.image_size)[state.scale];
  const [x, y] = state.clicked, row = Math.min(h - 1, Math.floor(y * h)), col = Math.min(w - 1, Math.floor(x * w));
  const anchors = B.multibox_prior(h, w, spec.sizes[state.scale], spec.ratios[state.scale]);
  const k = anchors.length / 4 / (h * w), first = (row * w + col) * k;
  const iw = state.image.naturalWidth, ih = state.image.naturalHeight, list = [];
  for (let a = 0; a < k; a++) {
    const box = Array.from(anchors.subarray(4 * (first + a), 4 * (first + a) + 4));
    list.push({ box: [box[0] * iw, box[1] * ih, box[2] * iw, box[3] * ih], color: COLORS[(a + 1) % 6], text: `${a}` });
  }
  drawBoxes(context, list, scale);
  $("ssd-anchor-info").textContent = `cell (${row}, ${col}) of ${h} x ${w}: ${k} anchors, sizes ` +
    `${spec.sizes[state.scale].join(", ")} with ratio ${spec.ratios[state.scale][0]}, then size ` +
    `${spec.sizes[state.scale][0]} with ratios ${spec.ratios[state.scale].slice(1).join(", ")}`;
  return { anchors: k };
}

// The drawn box as the ground truth of multibox_target: the anchors the book's matching assigns to it.
function drawLabelling({ context, scale }) {
  $("ssd-label-info").textContent = state.mode === "label" ? "Drag a box on the image: it becomes the ground truth." : "";
  if (state.mode !== "label" || !state.truth) return { anchors: 0, assigned: 0 };
  const iw = state.image.naturalWidth, ih = state.image.naturalHeight, truth = Float32Array.from(state.truth);
  const map = B.assign_anchor_to_bbox(truth, state.anchors, 0.5);
  const iou = B.box_iou(state.anchors, truth), assigned = [];
  for (let a = 0; a < map.length; a++) if (map[a] === 0) assigned.push(a);
  const best = assigned.reduce((b, a) => (iou[a] > iou[b] ? a : b), assigned[0]);
  const list = assigned.map((a) => ({   // only the best anchor is labelled: dozens of labels would hide the picture
    box: Array.from(state.anchors.subarray(4 * a, 4 * a + 4)).map((v, i) => v * (i % 2 ? ih : iw)),
    color: iou[a] >= 0.5 ? "#2ca02c" : "#ff7f0e", text: a === best ? `best anchor, IoU ${iou[a].toFixed(2)}` : "",
  }));
  drawBoxes(context, list, scale);
  drawBoxes(context, [{ box: [truth[0] * iw, truth[1] * ih, truth[2] * iw, truth[3] * ih], color: "#1f77b4",
                        text: "truth" }], scale);
  $("ssd-label-info").textContent = `${assigned.length} anchor${assigned.length === 1 ? "" : "s"} labelled with ` +
    `this box (${assigned.filter((a) => iou[a] >= 0.5).length} at IoU >= 0.5; the best anchor, IoU ` +
    `${iou[best].toFixed(3)}, always); every other anchor is background.`;
  return { anchors: 0, assigned: assigned.length };
}

async function choose(source) {
  await loadImage(source);
  await runModel();
  render();
}

function pointer(event) {
  const canvas = $("ssd-after"), rect = canvas.getBoundingClientRect();
  return [(event.clientX - rect.left) / rect.width, (event.clientY - rect.top) / rect.height];
}

function wire() {
  $("ssd-threshold").addEventListener("input", (e) => { state.threshold = Number(e.target.value); $("ssd-threshold-value").textContent = state.threshold.toFixed(2); render(); });
  $("ssd-nms").addEventListener("input", (e) => { state.nms = Number(e.target.value); $("ssd-nms-value").textContent = state.nms.toFixed(2); render(); });
  $("ssd-decode").addEventListener("change", (e) => {
    state.decode = e.target.value;
    state.nms = state.decode === "book" ? B.BOOK_NMS_THRESHOLD : B.NMS_THRESHOLD;
    $("ssd-nms").value = state.nms; $("ssd-nms-value").textContent = state.nms.toFixed(2);
    render();
  });
  $("ssd-mode").addEventListener("change", (e) => { state.mode = e.target.value; render(); });
  $("ssd-scale").addEventListener("change", (e) => { state.scale = Number(e.target.value); render(); });
  $("ssd-model").addEventListener("change", async (e) => {
    await loadModel(state.models[Number(e.target.value)]);
    $("ssd-samples").innerHTML = sampleButtons();
    await choose(new URL(state.model.samples[0], ROOT).href);
  });
  $("ssd-time").addEventListener("click", async () => { await time(10); });
  $("ssd-file").addEventListener("change", async (e) => { if (e.target.files[0]) await choose(URL.createObjectURL(e.target.files[0])); });
  const drop = $("ssd-drop");
  drop.addEventListener("dragover", (e) => e.preventDefault());
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    if (e.dataTransfer.files[0]) await choose(URL.createObjectURL(e.dataTransfer.files[0]));
  });
  $("ssd-samples").addEventListener("click", async (e) => {
    const src = e.target.closest("button")?.dataset.src;
    if (src) await choose(new URL(src, ROOT).href);
  });
  const canvas = $("ssd-after");
  let start = null;
  canvas.addEventListener("mousedown", (e) => { start = pointer(e); });
  canvas.addEventListener("mouseup", (e) => {
    const end = pointer(e);
    if (state.mode === "anchors") state.clicked = end;
    if (state.mode === "label" && start && Math.abs(end[0] - start[0]) > 0.01 && Math.abs(end[1] - start[1]) > 0.01) {
      state.truth = [Math.min(start[0], end[0]), Math.min(start[1], end[1]), Math.max(start[0], end[0]), Math.max(start[1], end[1])];
    }
    start = null;
    render();
  });
}

function sampleButtons() {
  return state.model.samples.map((src) => `<button type="button" class="md-button" data-src="${src}">` +
    `<img src="${new URL(src, ROOT).href}" alt="sample" width="64"></button>`).join("");
}

// Run the model n more times on the current image (the page reports the median time).
async function time(n) {
  for (let i = 0; i < n; i++) await runModel();
  render();
  return state.times.slice();
}

async function start() {
  if (!$("ssd-app") || $("ssd-app").dataset.started) return;
  $("ssd-app").dataset.started = "1";
  try {
    await setUp();
  } catch (error) {
    $("ssd-status").textContent = `The page could not run the model: ${error}`;
    window.multissdPage = { ready: false, error: String(error) };
    throw error;
  }
}

async function setUp() {
  ort = await import("../ort/ort.wasm.min.mjs");
  ort.env.wasm.wasmPaths = new URL("javascripts/ort/", ROOT).href;
  ort.env.wasm.numThreads = 1;  // threads need a cross-origin-isolated page, which a plain server is not
  state.models = await (await fetch(new URL("models/models.json", ROOT))).json();
  $("ssd-model").innerHTML = state.models.map((m, i) => `<option value="${i}">${m.title}</option>`).join("");
  await loadModel(state.models[0]);
  $("ssd-samples").innerHTML = sampleButtons();
  wire();
  await choose(new URL(state.model.samples[0], ROOT).href);
  window.multissdTime = time;
}

// Material's instant navigation swaps pages without reloading: start whenever the page is shown.
if (window.document$) window.document$.subscribe(() => start());
else start();
