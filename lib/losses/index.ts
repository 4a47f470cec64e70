import * as tf from '@tensorflow/tfjs';
import { permuteRows } from '../masks/mix';

/**
 * The frameworks' pair losses as pure functions returning one loss per row ([N]), so that the
 * MixMask terms can weight rows by their own λ. Inputs are raw embeddings; each function
 * normalises what it needs. Targets that must not receive gradients are the caller's to stop
 * (tfjs has no stop_gradient op: callers compute targets outside the gradient tape).
 */

/** L2-normalises rows. */
export function l2Normalize<T extends tf.Tensor2D>(x: T, eps = 1e-12): T {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), eps))) as T;
}

/** Row-wise cross-entropy of logits [N, C] against the class `labels[i]`. */
function rowCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const onehot = tf.oneHot(labels, logits.shape[1]);
    return tf.neg(tf.sum(tf.mul(logp, onehot), 1)) as tf.Tensor1D;
  });
}

/**
 * MoCo's InfoNCE: for each query q_i the positive is its key k_i, the negatives are the queue.
 * logits = [q·k, q·queueᵀ] / t, cross-entropy with class 0.
 */
export function infoNce(q: tf.Tensor2D, k: tf.Tensor2D, queue: tf.Tensor2D, temperature: number): tf.Tensor1D {
  return tf.tidy(() => {
    const qn = l2Normalize(q);
    const kn = l2Normalize(k);
    const pos = tf.sum(tf.mul(qn, kn), 1, true);
    const neg = tf.matMul(qn, l2Normalize(queue), false, true);
    const logits = tf.div(tf.concat([pos, neg], 1), temperature) as tf.Tensor2D;
    return rowCrossEntropy(logits, tf.zeros([q.shape[0]], 'int32'));
  });
}

/**
 * SimCLR's NT-Xent over the 2N embeddings of two views: for row i of view a the positive is row
 * i of view b, the negatives are the other 2N − 2 embeddings. Returns the 2N row losses
 * (view a's rows, then view b's).
 */
export function ntXent(a: tf.Tensor2D, b: tf.Tensor2D, temperature: number): tf.Tensor1D {
  return tf.tidy(() => {
    const n = a.shape[0];
    const z = l2Normalize(tf.concat([a, b], 0) as tf.Tensor2D);
    const sim = tf.div(tf.matMul(z, z, false, true), temperature);
    // Exclude self-similarity with a large negative number (not −∞, which would give NaN gradients).
    const logits = tf.sub(sim, tf.mul(tf.eye(2 * n), 1e9)) as tf.Tensor2D;
    const positives = tf.concat([tf.range(n, 2 * n, 1, 'int32'), tf.range(0, n, 1, 'int32')]) as tf.Tensor1D;
    return rowCrossEntropy(logits, positives);
  });
}

/**
 * Cross-view contrastive loss used for the mixed terms of SimCLR: anchor i's positive is target
 * row i, its negatives the other target rows. logits = anchorsₙ · targetsₙᵀ / t.
 */
export function crossViewNce(anchors: tf.Tensor2D, targets: tf.Tensor2D, temperature: number): tf.Tensor1D {
  return tf.tidy(() => {
    const logits = tf.div(tf.matMul(l2Normalize(anchors), l2Normalize(targets), false, true), temperature) as tf.Tensor2D;
    return rowCrossEntropy(logits, tf.range(0, anchors.shape[0], 1, 'int32') as tf.Tensor1D);
  });
}

/** Row-wise cosine similarity. */
export function cosine(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.mul(l2Normalize(a), l2Normalize(b)), 1) as tf.Tensor1D);
}

/** BYOL: 2 − 2·cos(p, z), with z the (stopped) target projection. */
export function byolLoss(p: tf.Tensor2D, z: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.sub(2, tf.mul(2, cosine(p, z))) as tf.Tensor1D);
}

/** SimSiam: −cos(p, z), with z the (stopped) projection of the other view; reaches −1. */
export function simsiamLoss(p: tf.Tensor2D, z: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.neg(cosine(p, z)) as tf.Tensor1D);
}

/**
 * The asymmetric MixMask / Un-Mix terms for one mixed view (docs/method.md#the-loss-template):
 *   Σᵢ λᵢ·ℓ(outᵢ → targetᵢ) / N  +  Σⱼ (1 − λ_{inv j})·ℓ(out_{inv j} → targetⱼ) / N
 * where `rowLoss(anchors, targets)` is the framework's per-row pair loss, `out` the mixed view's
 * online outputs, `lambdas[i]` the share of own content of mixed row i and `inverse` the
 * re-indexing that lines the mixed outputs up with their partners' targets.
 */
export function mixedTerms(
  rowLoss: (anchors: tf.Tensor2D, targets: tf.Tensor2D) => tf.Tensor1D,
  out: tf.Tensor2D,
  targets: tf.Tensor2D,
  lambdas: ArrayLike<number>,
  inverse: Int32Array,
): { own: tf.Scalar; partner: tf.Scalar } {
  return tf.tidy(() => {
    const n = out.shape[0];
    if (lambdas.length !== n || inverse.length !== n) {
      throw new Error(`mixedTerms: ${n} outputs but ${lambdas.length} λ values and ${inverse.length} inverse indices`);
    }
    const lam = tf.tensor1d(Float32Array.from(lambdas));
    const idx = tf.tensor1d(inverse, 'int32');
    const own = tf.mean(tf.mul(lam, rowLoss(out, targets))) as tf.Scalar;
    const partnerShare = tf.sub(1, tf.gather(lam, idx));
    const partner = tf.mean(tf.mul(partnerShare, rowLoss(permuteRows(out, inverse), targets))) as tf.Scalar;
    return { own, partner };
  });
}

/**
 * Identity in the forward pass, zero gradient in the backward pass (tfjs has no stop_gradient).
 * Used where a target comes from inside the gradient tape (SimSiam's z).
 */
const stopGradientOp = tf.customGrad((...inputs) => ({
  value: tf.clone(inputs[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
}));

export function stopGradient<T extends tf.Tensor>(x: T): T {
  return stopGradientOp(x) as T;
}
