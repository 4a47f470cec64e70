import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng';
import { Grid, cellIndex, checkImageSize } from './grid';

/**
 * Tensor side of MixMask: upsampling grids to pixel masks and mixing a batch with its
 * partners. Everything here runs as tfjs ops on the active backend; only index vectors
 * (length N, H or W) and the g×g grids are built in JavaScript.
 */

/**
 * Upsamples grids (nearest, see cellIndex) to a pixel mask M of shape [grids.length, H, W, 1],
 * float32 with M = 1 where a pixel keeps its own content. One grid gives a [1, H, W, 1] mask that
 * broadcasts over the batch. The caller owns the returned tensor.
 */
export function upsampleGrid(grids: Grid | Grid[], height: number, width: number): tf.Tensor4D {
  const list = Array.isArray(grids) ? grids : [grids];
  if (list.length === 0) throw new Error('masks: upsampleGrid needs at least one grid');
  const g = list[0].size;
  for (const gr of list) {
    if (gr.size !== g) throw new Error(`masks: upsampleGrid got grids of different sizes (${g} and ${gr.size})`);
  }
  checkImageSize(height, width, g);
  const cells = new Float32Array(list.length * g * g);
  list.forEach((gr, b) => cells.set(gr.keep, b * g * g));
  return tf.tidy(() => {
    const t = tf.tensor3d(cells, [list.length, g, g]);
    if (height % g === 0 && width % g === 0) {
      // Equal cells: a broadcast product with ones is the same nearest upsampling and much
      // cheaper than gathers on wasm/cpu (gather costs ~45 ns per element there).
      const sh = height / g;
      const sw = width / g;
      const up = tf.mul(tf.reshape(t, [list.length, g, 1, g, 1]), tf.ones([1, 1, sh, 1, sw]));
      return tf.reshape(up, [list.length, height, width, 1]) as tf.Tensor4D;
    }
    const rows = tf.tensor1d(cellIndex(height, g), 'int32');
    const cols = tf.tensor1d(cellIndex(width, g), 'int32');
    // Two gathers = nearest upsampling with our exact pixel→cell map (tf.image's resize
    // rounds differently between options and versions; this does not depend on them).
    const up = tf.gather(tf.gather(t, rows, 1), cols, 2);
    return tf.reshape(up, [list.length, height, width, 1]) as tf.Tensor4D;
  });
}

/** Partner index of the batch flip: i → N − 1 − i (the official MixMask / Un-Mix partner). */
export function flipIndex(n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = n - 1 - i;
  return p;
}

/** A random permutation partner (the MixMask partner in "both" mode). Fixed points may occur, as with torch.randperm. */
export function permutationIndex(n: number, rng: Rng): Int32Array {
  return rng.permutation(n);
}

/**
 * Inverse of a partner index (argsort of a permutation): inverse[partner[i]] = i. Gathering the
 * mixed views' outputs with it lines row j up with the partner image j's targets. For the flip
 * it is the flip itself.
 */
export function inverseIndex(partner: Int32Array): Int32Array {
  const n = partner.length;
  const inv = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const p = partner[i];
    if (!Number.isInteger(p) || p < 0 || p >= n || inv[p] !== -1) {
      throw new Error(`masks: partner index must be a permutation of 0..${n - 1}; entry ${i} is ${p}`);
    }
    inv[p] = i;
  }
  return inv;
}

function isFlip(index: Int32Array): boolean {
  const n = index.length;
  for (let i = 0; i < n; i++) if (index[i] !== n - 1 - i) return false;
  return true;
}

/**
 * Rows of x in the order `perm` (a permutation of 0..n−1): out[i] = x[perm[i]]. The view methods
 * pair images with it, the asymmetric loss re-orders embeddings. A reverse for the flip;
 * otherwise a gather whose gradient is the gather by the inverse permutation — no scatter
 * (UnsortedSegmentSum), which the wasm backend lacks.
 */
export function permuteRows<T extends tf.Tensor>(x: T, perm: Int32Array): T {
  const n = x.shape[0];
  if (perm.length !== n) throw new Error(`permuteRows: ${perm.length} indices for ${n} rows`);
  if (isFlip(perm)) return tf.reverse(x, 0) as T;
  const inv = new Int32Array(n).fill(-1);
  perm.forEach((p, i) => {
    if (p < 0 || p >= n || inv[p] !== -1) throw new Error(`permuteRows: index ${p} at position ${i} makes this no permutation of 0..${n - 1}`);
    inv[p] = i;
  });
  const op = tf.customGrad((...inputs) => ({
    value: tf.gather(inputs[0] as tf.Tensor, tf.tensor1d(perm, 'int32')),
    gradFunc: (dy: tf.Tensor) => tf.gather(dy, tf.tensor1d(inv, 'int32')),
  }));
  return tf.tidy(() => op(x) as T);
}

function checkBatch(x: tf.Tensor, what: string): asserts x is tf.Tensor4D {
  if (x.rank !== 4) throw new Error(`masks: ${what} must be a [N, H, W, C] batch, got shape [${x.shape.join(', ')}]`);
}

function checkMask(x: tf.Tensor4D, mask: tf.Tensor4D): void {
  const [n, h, w] = x.shape;
  const [mn, mh, mw, mc] = mask.shape;
  if ((mn !== 1 && mn !== n) || mh !== h || mw !== w || mc !== 1) {
    throw new Error(`masks: mask shape [${mask.shape.join(', ')}] does not fit batch [${x.shape.join(', ')}]; expected [1 or ${n}, ${h}, ${w}, 1]`);
  }
}

/**
 * x_m = M⊙x + (1−M)⊙partner(x). With M ∈ {0, 1} every product is exactly the pixel or zero, so
 * kept pixels are exactly x and filled pixels exactly the partner's. Written as two broadcast
 * products rather than tf.where: where() materialises the broadcast condition with Tile, which
 * on wasm cost 4× the whole arithmetic version. `mask` is [1|N, H, W, 1].
 */
export function mixWithPartner(x: tf.Tensor4D, mask: tf.Tensor4D, partner: Int32Array): tf.Tensor4D {
  checkBatch(x, 'x');
  checkMask(x, mask);
  return tf.tidy(() => tf.add(tf.mul(x, mask), tf.mul(permuteRows(x, partner), tf.sub(1, mask))));
}

/**
 * Erase baseline (MSCN-style): filled pixels (M = 0) get `fill` — a scalar, or one value per
 * channel such as the dataset mean — and no partner is involved.
 */
export function eraseWith(x: tf.Tensor4D, mask: tf.Tensor4D, fill: number | number[] = 0): tf.Tensor4D {
  checkBatch(x, 'x');
  checkMask(x, mask);
  const c = x.shape[3];
  if (Array.isArray(fill) && fill.length !== c && fill.length !== 1) {
    throw new Error(`masks: fill must be a number or ${c} per-channel values, got ${fill.length} values`);
  }
  return tf.tidy(() => {
    const f: tf.Tensor = Array.isArray(fill) ? tf.tensor4d(fill, [1, 1, 1, fill.length], x.dtype) : tf.scalar(fill, x.dtype);
    // (1−M)⊙fill is mask-sized (small); only one product and one sum touch the whole batch.
    return tf.add(tf.mul(x, mask), tf.mul(tf.sub(1, mask), f)) as tf.Tensor4D;
  });
}

/** Global mixup with a partner: λ·x + (1−λ)·partner(x). */
export function mixupWithPartner(x: tf.Tensor4D, lambda: number, partner: Int32Array): tf.Tensor4D {
  checkBatch(x, 'x');
  if (!Number.isFinite(lambda) || lambda < 0 || lambda > 1) throw new Error(`masks: mixup lambda must be in [0, 1], got ${lambda}`);
  return tf.tidy(() => tf.add(tf.mul(x, lambda), tf.mul(permuteRows(x, partner), 1 - lambda)));
}

/** A CutMix box in pixels, rows [y0, y1) × columns [x0, x1), already clipped to the image. */
export interface Box {
  y0: number;
  y1: number;
  x0: number;
  x1: number;
}

/**
 * CutMix box for a drawn λu (Un-Mix): sides floor(H·√(1−λu)) × floor(W·√(1−λu)) around a centre
 * drawn uniformly over the pixels, then clipped to the image (so it may come out smaller).
 */
export function cutmixBox(height: number, width: number, lambdaU: number, rng: Rng): Box {
  if (!Number.isFinite(lambdaU) || lambdaU < 0 || lambdaU > 1) throw new Error(`masks: CutMix lambda must be in [0, 1], got ${lambdaU}`);
  const cut = Math.sqrt(1 - lambdaU);
  const ch = Math.floor(height * cut);
  const cw = Math.floor(width * cut);
  const cy = rng.int(height);
  const cx = rng.int(width);
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  const y0 = clip(cy - Math.floor(ch / 2), height);
  const x0 = clip(cx - Math.floor(cw / 2), width);
  const y1 = clip(cy - Math.floor(ch / 2) + ch, height);
  const x1 = clip(cx - Math.floor(cw / 2) + cw, width);
  return { y0, y1, x0, x1 };
}

/** Share of pixels outside the box (the realised λ of a CutMix view). */
export function boxLambda(box: Box, height: number, width: number): number {
  return 1 - ((box.y1 - box.y0) * (box.x1 - box.x0)) / (height * width);
}

/** Pixel mask [1, H, W, 1] of a box: M = 0 inside (pasted from the partner), 1 outside. */
export function boxMask(box: Box, height: number, width: number): tf.Tensor4D {
  const rows = new Float32Array(height);
  const cols = new Float32Array(width);
  for (let y = box.y0; y < box.y1; y++) rows[y] = 1;
  for (let x = box.x0; x < box.x1; x++) cols[x] = 1;
  return tf.tidy(() => {
    const inside = tf.mul(tf.tensor4d(rows, [1, height, 1, 1]), tf.tensor4d(cols, [1, 1, width, 1]));
    return tf.sub(1, inside) as tf.Tensor4D;
  });
}
