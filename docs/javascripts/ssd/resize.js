// Pillow's bilinear resize, ported: what multissd.predict does to an image before the model sees it
// (``image.resize((width, height), Image.BILINEAR)``), so the page's detections match predict's on
// an image of any size. Pillow resamples in two passes, horizontal then vertical, each with a
// triangle filter stretched by the scale when shrinking (an antialiasing filter), its weights in
// fixed point with 22 fractional bits and each pass rounded to 8-bit (Pillow's Resample.c:
// precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal_8bpc / Vertical_8bpc).
"use strict";

const PRECISION_BITS = 32 - 8 - 2;

function coefficients(in_size, out_size) {
  const scale = in_size / out_size, filterscale = Math.max(scale, 1), support = filterscale;
  const ksize = Math.ceil(support) * 2 + 1, bounds = new Int32Array(2 * out_size);
  const kk = new Int32Array(out_size * ksize);
  for (let xx = 0; xx < out_size; xx++) {
    const center = (xx + 0.5) * scale, ss = 1 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    const weights = [];
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss), w = t < 1 ? 1 - t : 0;
      weights.push(w);
      total += w;
    }
    weights.forEach((w, x) => {
      const k = total !== 0 ? w / total : w;
      kk[xx * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS));
    });
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(value) {
  const v = value >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// resize_bilinear(rgb, width, height, out_width, out_height): rgb is a Uint8Array of 3 bytes per pixel,
// row-major (or a canvas's RGBA ImageData.data, with channels = 4); returns Uint8Array (out_h * out_w * 3).
export function resize_bilinear(rgb, width, height, out_width, out_height, channels = 3) {
  const horizontal = coefficients(width, out_width), vertical = coefficients(height, out_height);
  const need_h = out_width !== width, need_v = out_height !== height;
  // the rows the vertical pass reads
  const first = need_v ? vertical.bounds[0] : 0;
  const last = need_v ? vertical.bounds[2 * out_height - 2] + vertical.bounds[2 * out_height - 1] : height;
  let rows = last - first, cols = width;
  let source = new Uint8Array(rows * cols * 3);
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      for (let c = 0; c < 3; c++) source[(y * cols + x) * 3 + c] = rgb[((y + first) * width + x) * channels + c];
    }
  }
  if (need_h) {
    const out = new Uint8Array(rows * out_width * 3), { ksize, bounds, kk } = horizontal;
    for (let y = 0; y < rows; y++) {
      for (let xx = 0; xx < out_width; xx++) {
        const xmin = bounds[2 * xx], xmax = bounds[2 * xx + 1];
        for (let c = 0; c < 3; c++) {
          let ss = 1 << (PRECISION_BITS - 1);
          for (let x = 0; x < xmax; x++) ss += source[(y * cols + x + xmin) * 3 + c] * kk[xx * ksize + x];
          out[(y * out_width + xx) * 3 + c] = clip8(ss);
        }
      }
    }
    source = out;
    cols = out_width;
  }
  if (!need_v) return source;
  const out = new Uint8Array(out_height * cols * 3), { ksize, bounds, kk } = vertical;
  for (let yy = 0; yy < out_height; yy++) {
    const ymin = bounds[2 * yy] - first, ymax = bounds[2 * yy + 1];
    for (let x = 0; x < cols; x++) {
      for (let c = 0; c < 3; c++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let y = 0; y < ymax; y++) ss += source[((y + ymin) * cols + x) * 3 + c] * kk[yy * ksize + y];
        out[(yy * cols + x) * 3 + c] = clip8(ss);
      }
    }
  }
  return out;
}
