import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/types';
import type { ResNet } from '../models/resnet';
import { l2Normalize } from '../losses';
import { checkInt, checkNumber, type EvalTransform, labelRank, percent, type ProgressFn, stopIfAborted } from './common';
import { extractFeatures, type FeatureFn, type FeatureSet } from './features';

/**
 * Weighted kNN classification on features (the Figure 1 monitor; InstDisc / MoCo / solo-learn
 * protocol): cosine similarity between L2-normalised query and bank features, the k most
 * similar bank samples vote for their class with weight exp(sim / T), the class with the
 * largest summed weight wins. Computed in query × bank chunks with a running top-k merge, so
 * memory is bounded by one [queryChunk, bankChunk] block whatever the sizes.
 */

/** Features as a tensor [n, dim] (not disposed here) or as rows in JS memory. */
export type FeatureInput = tf.Tensor2D | FeatureSet;

export interface NeighbourOptions {
  /** Neighbours kept per query (default 200); clamped to the bank size. */
  k?: number;
  /** L2-normalise bank and query rows first, making the dot product the cosine (default true). */
  l2Normalize?: boolean;
  /** Query rows per block (default 512). */
  queryChunk?: number;
  /** Bank rows per block (default 8192); one block of sims is queryChunk × bankChunk floats (16 MB). */
  bankChunk?: number;
  onProgress?: ProgressFn;
}

/** The k nearest bank rows of each query, most similar first. */
export interface Neighbours {
  /** Queries. */
  n: number;
  /** Neighbours per query (the requested k clamped to the bank size). */
  k: number;
  /** n × k similarities, descending per row. */
  similarities: Float32Array;
  /** n × k bank row indices matching `similarities`. */
  indices: Int32Array;
}

export interface VoteOptions {
  /** Neighbours that vote (default 200; at most the k the neighbours were computed with). */
  k?: number;
  /** Temperature of the exp(sim / T) weights (default 0.1). */
  t?: number;
  /** Classes (default: 1 + the largest label seen). */
  numClasses?: number;
  /** 'exp': weight exp(sim / T) (default); 'uniform': one vote per neighbour. */
  weighting?: 'exp' | 'uniform';
}

export interface KnnOptions extends NeighbourOptions, VoteOptions {}

export interface KnnResult {
  /** Top-1 / top-5 accuracy in percent. */
  top1: number;
  top5: number;
  /** Queries evaluated. */
  n: number;
  k: number;
  t: number;
  /** Predicted class (top-1) of each query. */
  predictions: Int32Array;
}

function shapeOf(f: FeatureInput, name: string): { n: number; dim: number } {
  if (f instanceof tf.Tensor) {
    if (f.rank !== 2) throw new Error(`${name} must be a 2-D tensor [n, dim], got shape [${f.shape}]`);
    if (f.dtype !== 'float32') throw new Error(`${name} must be float32, got ${f.dtype}`);
    return { n: f.shape[0], dim: f.shape[1] };
  }
  if (!f || !(f.data instanceof Float32Array)) throw new Error(`${name} must be a tf.Tensor2D or { data: Float32Array, dim }`);
  checkInt(`${name}.dim`, f.dim, 1);
  if (f.data.length % f.dim !== 0) throw new Error(`${name}: ${f.data.length} values is not a whole number of rows of dim ${f.dim}`);
  return { n: f.data.length / f.dim, dim: f.dim };
}

/** Rows [start, end) as a new tensor (the caller disposes it). */
function rows(f: FeatureInput, start: number, end: number, dim: number): tf.Tensor2D {
  if (f instanceof tf.Tensor) return tf.slice(f, [start, 0], [end - start, dim]);
  return tf.tensor2d(f.data.subarray(start * dim, end * dim), [end - start, dim]);
}

/**
 * The k nearest bank rows (by dot product of the optionally L2-normalised rows) of every query
 * row. Bank blocks [rows, dim] are normalised once; each query block is transposed once to
 * [dim, rows] and walks the bank blocks as bankBlock × queryᵀ, merging each block's top-k into
 * a running top-k. Measured on wasm (XNNPACK, one thread): this orientation keeps the query
 * block as the operand XNNPACK packs once and reuses (~28 GFLOP/s), where query × bankᵀ
 * repacks a different bank block every call (8–17 GFLOP/s); a transposed matMul operand
 * leaves XNNPACK altogether (~2 GFLOP/s). Each block is read with `await data()`, so this
 * works on every backend (webgpu included).
 */
export async function knnNeighbours(bank: FeatureInput, query: FeatureInput, opts: NeighbourOptions = {}): Promise<Neighbours> {
  const b = shapeOf(bank, 'bankFeatures');
  const q = shapeOf(query, 'queryFeatures');
  if (b.dim !== q.dim) throw new Error(`knn: bank features have dim ${b.dim}, query features ${q.dim}`);
  if (b.n === 0) throw new Error('knn: the bank is empty');
  const kReq = opts.k ?? 200;
  checkInt('k', kReq, 1);
  const k = Math.min(kReq, b.n);
  const l2 = opts.l2Normalize ?? true;
  const queryChunk = opts.queryChunk ?? 512;
  const bankChunk = opts.bankChunk ?? 8192;
  checkInt('queryChunk', queryChunk, 1);
  checkInt('bankChunk', bankChunk, 1);

  const similarities = new Float32Array(q.n * k);
  const indices = new Int32Array(q.n * k);
  const bankBlocks: Array<{ start: number; t: tf.Tensor2D }> = [];
  try {
    for (let s = 0; s < b.n; s += bankChunk) {
      const e = Math.min(s + bankChunk, b.n);
      bankBlocks.push({ start: s, t: tf.tidy(() => (l2 ? l2Normalize(rows(bank, s, e, b.dim)) : rows(bank, s, e, b.dim))) });
    }
    for (let s = 0; s < q.n; s += queryChunk) {
      const e = Math.min(s + queryChunk, q.n);
      const qT = tf.tidy(() => tf.transpose(l2 ? l2Normalize(rows(query, s, e, q.dim)) : rows(query, s, e, q.dim)));
      try {
        let bestV: Float32Array | null = null;
        let bestI: Int32Array | null = null;
        let kBest = 0;
        for (const blk of bankBlocks) {
          const kb = Math.min(k, blk.t.shape[0]);
          const top = tf.tidy(() => tf.topk(tf.transpose(tf.matMul(blk.t, qT)), kb));
          let v: Float32Array;
          let ix: Int32Array;
          try {
            [v, ix] = (await Promise.all([top.values.data(), top.indices.data()])) as [Float32Array, Int32Array];
          } finally {
            top.values.dispose();
            top.indices.dispose();
          }
          for (let j = 0; j < ix.length; j++) ix[j] += blk.start;
          if (bestV === null || bestI === null) {
            [bestV, bestI, kBest] = [v, ix, kb];
          } else {
            // The merge runs in JS (k per row, cheap): wasm's batched gather faults on large
            // inputs. Earlier blocks win ties, so the order equals one unchunked top-k.
            const kNew = Math.min(k, kBest + kb);
            [bestV, bestI] = mergeRows(bestV, bestI, kBest, v, ix, kb, e - s, kNew);
            kBest = kNew;
          }
        }
        similarities.set(bestV!, s * k);
        indices.set(bestI!, s * k);
      } finally {
        qT.dispose();
      }
      opts.onProgress?.({ task: 'knn', phase: 'neighbours', done: e, total: q.n });
    }
  } finally {
    for (const blk of bankBlocks) blk.t.dispose();
  }
  return { n: q.n, k, similarities, indices };
}

/** Row-wise merge of two descending lists (a wins ties), keeping the first kOut of each row. */
function mergeRows(av: Float32Array, ai: Int32Array, ka: number, bv: Float32Array, bi: Int32Array, kb: number, rowsN: number, kOut: number): [Float32Array, Int32Array] {
  const ov = new Float32Array(rowsN * kOut);
  const oi = new Int32Array(rowsN * kOut);
  for (let r = 0; r < rowsN; r++) {
    let x = r * ka;
    let y = r * kb;
    const xe = x + ka;
    const ye = y + kb;
    for (let o = r * kOut, oe = o + kOut; o < oe; o++) {
      if (y >= ye || (x < xe && av[x] >= bv[y])) {
        ov[o] = av[x];
        oi[o] = ai[x++];
      } else {
        ov[o] = bv[y];
        oi[o] = bi[y++];
      }
    }
  }
  return [ov, oi];
}

/** Weighted vote of the first `k` neighbours of each query; accuracy against `queryLabels`. */
export function knnVote(nb: Neighbours, bankLabels: ArrayLike<number>, queryLabels: ArrayLike<number>, opts: VoteOptions = {}): KnnResult {
  const t = opts.t ?? 0.1;
  checkNumber('t', t, { positive: true });
  const kReq = opts.k ?? 200;
  checkInt('k', kReq, 1);
  const k = Math.min(kReq, nb.k);
  if (kReq > nb.k && nb.k < bankLabels.length) {
    throw new Error(`knnVote: k = ${kReq} but the neighbours were computed with k = ${nb.k}; compute them with the largest k needed`);
  }
  const weighting = opts.weighting ?? 'exp';
  if (weighting !== 'exp' && weighting !== 'uniform') throw new Error(`option weighting must be 'exp' or 'uniform', got '${String(weighting)}'`);
  if (queryLabels.length !== nb.n) throw new Error(`knnVote: ${queryLabels.length} query labels for ${nb.n} queries`);
  let maxLabel = -1;
  for (let i = 0; i < bankLabels.length; i++) maxLabel = Math.max(maxLabel, bankLabels[i]);
  for (let i = 0; i < queryLabels.length; i++) maxLabel = Math.max(maxLabel, queryLabels[i]);
  const numClasses = opts.numClasses ?? maxLabel + 1;
  checkInt('numClasses', numClasses, 1);
  if (maxLabel >= numClasses) throw new Error(`knnVote: label ${maxLabel} is out of range for numClasses = ${numClasses}`);

  const scores = new Float64Array(numClasses);
  const predictions = new Int32Array(nb.n);
  let c1 = 0;
  let c5 = 0;
  for (let i = 0; i < nb.n; i++) {
    scores.fill(0);
    const o = i * nb.k;
    for (let j = 0; j < k; j++) {
      const y = bankLabels[nb.indices[o + j]];
      if (y < 0) throw new Error(`knnVote: bank label ${y} is negative`);
      scores[y] += weighting === 'exp' ? Math.exp(nb.similarities[o + j] / t) : 1;
    }
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (scores[c] > scores[best]) best = c;
    predictions[i] = best;
    const rank = labelRank(scores, 0, numClasses, queryLabels[i]);
    if (rank < 1) c1++;
    if (rank < 5) c5++;
  }
  return { top1: percent(c1, nb.n), top5: percent(c5, nb.n), n: nb.n, k, t, predictions };
}

/**
 * Weighted kNN accuracy of query features against a bank of labelled features. For several
 * (k, T) settings on the same features, call knnNeighbours once with the largest k and
 * knnVote per setting.
 */
export async function knnClassify(
  bankFeatures: FeatureInput,
  bankLabels: ArrayLike<number>,
  queryFeatures: FeatureInput,
  queryLabels: ArrayLike<number>,
  opts: KnnOptions = {},
): Promise<KnnResult> {
  checkLabelCounts(bankFeatures, bankLabels, queryFeatures, queryLabels);
  const nb = await knnNeighbours(bankFeatures, queryFeatures, opts);
  return knnVote(nb, bankLabels, queryLabels, opts);
}

function checkLabelCounts(bankFeatures: FeatureInput, bankLabels: ArrayLike<number>, queryFeatures: FeatureInput, queryLabels: ArrayLike<number>): void {
  const bn = shapeOf(bankFeatures, 'bankFeatures').n;
  if (bankLabels.length !== bn) throw new Error(`knnClassify: ${bankLabels.length} bank labels for ${bn} bank rows`);
  const qn = shapeOf(queryFeatures, 'queryFeatures').n;
  if (queryLabels.length !== qn) throw new Error(`knnClassify: ${queryLabels.length} query labels for ${qn} query rows`);
}

export interface KnnMonitorOptions extends KnnOptions {
  /** Memory bank: the train split (read with the test transform, as in MoCo's monitor). */
  bank: Dataset;
  /** Evaluated split. */
  query: Dataset;
  /** Images per forward pass (default 256). */
  batchSize?: number;
  /** Input size / pixel normalisation (pass the training recipe); default: dataset size, none. */
  transform?: Partial<EvalTransform>;
  /** Stops at the next feature batch, or before the search, with an InterruptedError once aborted. */
  signal?: AbortSignal;
  /** Pixel normalisation (shorthand for transform.normalize; pass recipe.normalize). */
  normalize?: EvalTransform['normalize'];
  /** Subsets of the bank / query (e.g. quick monitors); default all. */
  bankIndices?: ArrayLike<number>;
  queryIndices?: ArrayLike<number>;
}

export interface KnnMonitorResult extends KnnResult {
  /** Seconds spent on features and on the search. */
  featureSeconds: number;
  searchSeconds: number;
}

/**
 * The kNN monitor of a backbone (Figure 1): features of bank and query in eval mode with the
 * test transform, then knnClassify (default k = 200, T = 0.1, cosine). Leaves the backbone's
 * state untouched, so a trainer can call it every N epochs.
 */
export async function knnMonitor(backbone: ResNet | FeatureFn, opts: KnnMonitorOptions): Promise<KnnMonitorResult> {
  if (!opts || !opts.bank || !opts.query) throw new Error('knnMonitor: options bank and query (datasets) are required');
  if (opts.bank.numClasses !== opts.query.numClasses) {
    throw new Error(`knnMonitor: bank ${opts.bank.name} has ${opts.bank.numClasses} classes, query ${opts.query.name} has ${opts.query.numClasses}`);
  }
  const transform = { ...opts.transform, ...(opts.normalize !== undefined ? { normalize: opts.normalize } : {}) };
  const t0 = Date.now();
  const ex = { batchSize: opts.batchSize, transform, onProgress: opts.onProgress, signal: opts.signal };
  const bank = await extractFeatures(backbone, opts.bank, { ...ex, indices: opts.bankIndices, phase: 'bank features' });
  const query = await extractFeatures(backbone, opts.query, { ...ex, indices: opts.queryIndices, phase: 'query features' });
  stopIfAborted(opts.signal, 'kNN evaluation', 'before the neighbour search');
  const t1 = Date.now();
  const res = await knnClassify(bank, bank.labels, query, query.labels, { ...opts, numClasses: opts.numClasses ?? opts.bank.numClasses });
  return { ...res, featureSeconds: (t1 - t0) / 1000, searchSeconds: (Date.now() - t1) / 1000 };
}
