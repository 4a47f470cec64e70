import * as tf from '@tensorflow/tfjs';

/**
 * Batch normalisation in training mode, optionally plus a residual, optionally followed by ReLU,
 * optionally per group of samples.
 *
 * A backend may register a fused kernel (and its gradient) under `FUSED_BATCH_NORM_KERNEL`;
 * when the active backend has it, the backbones use it, otherwise they fall back to the
 * composite tfjs ops below. The contract of the fused kernel:
 *   inputs  { x: [..., C], scale: [C], offset: [C], residual?: shape of x }
 *   attrs   { varianceEpsilon: number, relu: boolean, groups?: number (default 1),
 *             residual?: boolean (default false; true exactly when the residual input is given) }
 *   outputs [ y (shape of x), mean, variance (biased, i.e. divided by N) ]
 * y = act(BN(x) + residual), act = ReLU when `relu`, identity otherwise (residual = 0 without
 * one): the end of a ResNet block, relu(bn(conv(h)) + identity), in one kernel where it was the
 * kernel, an Add and a Relu (and their gradients).
 * Groups: x's first axis (the batch; in NHWC a group's rows are contiguous) is cut into `groups`
 * equal contiguous parts, each normalised with its own statistics, as if each were a separate
 * call (MoCo's shuffle-BN: one BatchNorm per emulated device, in one encoder pass). mean and
 * variance are [C] when groups = 1 (every existing caller) and [groups, C] otherwise.
 * Only `y` carries a gradient; `mean` and `variance` feed the running statistics.
 *
 * A backend implements groups > 1 only once it says so with `declareGroupedBatchNorm`, and the
 * residual only once it says so with `declareResidualBatchNorm`; for the others (and the
 * composite) `batchNormTrain` splits x into the groups, runs each on its own and concatenates,
 * and adds the residual (then ReLU) with tfjs ops after a kernel call without ReLU: the same
 * result, in more calls.
 */
export const FUSED_BATCH_NORM_KERNEL = 'MixMaskFusedBatchNormTrain';

/**
 * The fused kernel's gradient, which a backend registering the kernel registers too:
 *   inputs  { dy, x, y, mean, variance, scale, offset } (y, mean, variance: the forward's
 *           outputs; offset: the forward's, for a kernel that recomputes the ReLU mask from x
 *           as its forward computed y instead of reading y — wasm+onednn's; others ignore it)
 *   attrs   as the forward's
 *   outputs [ dx, dScale [C], dOffset [C] ], and dResidual (shape of x) when attrs.residual
 * With g = dy·[y > 0] (ReLU) or dy, x̂ = (x − mean)/√(variance + ε), M elements per channel:
 *   dOffset = Σ g,  dScale = Σ g·x̂,  dx = scale/√(variance + ε) · (g − (dOffset + x̂·dScale)/M),
 *   dResidual = g.
 * y after the residual and ReLU is what the mask needs, so the residual itself is not an input
 * (the tape does not keep it alive for this gradient).
 * With groups, mean, variance, x̂ and M are the group's and the sums for dx run over the group;
 * dScale and dOffset add up every group's (scale and offset are shared).
 */
export const FUSED_BATCH_NORM_GRAD_KERNEL = 'MixMaskFusedBatchNormTrainGrad';

export interface BatchNormKernelAttrs {
  varianceEpsilon: number;
  relu: boolean;
  groups?: number;
  /** Whether the forward has a residual input (and the gradient a dResidual output). */
  residual?: boolean;
}

/**
 * Registers the fused kernel's gradient (for every backend: it runs FUSED_BATCH_NORM_GRAD_KERNEL
 * on the active one). Idempotent; each backend that registers the kernel calls it.
 */
export function registerFusedBatchNormGradient(): void {
  if (tf.getGradient(FUSED_BATCH_NORM_KERNEL)) return;
  tf.registerGradient({
    kernelName: FUSED_BATCH_NORM_KERNEL,
    inputsToSave: ['x', 'scale', 'offset'],
    outputsToSave: [true, true, true],
    gradFunc: (dys, saved, attrs) => {
      const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor;
      const [x, scale, offset, y, mean, variance] = saved;
      const a = attrs as unknown as BatchNormKernelAttrs;
      const residual = !!a.residual;
      const [dx, dScale, dOffset, dResidual] = tf.engine().runKernel(
        FUSED_BATCH_NORM_GRAD_KERNEL,
        { dy, x, y, mean, variance, scale, offset } as unknown as tf.NamedTensorMap,
        { varianceEpsilon: a.varianceEpsilon, relu: a.relu, groups: a.groups ?? 1, residual } as unknown as tf.NamedAttrMap,
      ) as tf.Tensor[];
      // The engine asks for one gradient per input the forward was given: residual only when it was.
      const grads: Record<string, () => tf.Tensor> = { x: () => dx, scale: () => dScale, offset: () => dOffset };
      if (residual) grads.residual = () => dResidual;
      return grads;
    },
  });
}

/**
 * Throws, naming the value, unless `groups` (undefined: 1) is a positive integer that divides
 * the first axis of x (rank ≥ 2 when groups > 1); returns it.
 */
export function checkBatchNormGroups(where: string, xShape: readonly number[], groups: number | undefined): number {
  const g = groups ?? 1;
  if (!Number.isInteger(g) || g < 1) throw new Error(`${where}: groups must be a positive integer, got ${groups}`);
  if (g === 1) return 1;
  if (xShape.length < 2) throw new Error(`${where}: groups = ${g} splits the batch (first) axis, x of shape [${xShape}] has none besides the channels`);
  if (xShape[0] % g !== 0) throw new Error(`${where}: groups = ${g} must divide the batch (first axis of x, [${xShape}]) into equal parts`);
  return g;
}

/** Shape of the mean and variance outputs: [C] for one group, [groups, C] otherwise. */
export function batchNormStatsShape(groups: number, C: number): number[] {
  return groups === 1 ? [C] : [groups, C];
}

/**
 * Throws, naming the operand, unless the residual (when the attrs say there is one) is float32
 * of x's shape, and there is one exactly when attrs.residual says so.
 */
export function checkBatchNormResidual(where: string, x: tf.TensorInfo, residual: tf.TensorInfo | undefined, declared: boolean | undefined): void {
  if (!!declared !== (residual !== undefined)) {
    throw new Error(`${where}: attrs.residual is ${!!declared} but the residual input is ${residual === undefined ? 'missing' : 'given'}`);
  }
  if (residual === undefined) return;
  if (residual.dtype !== 'float32') throw new Error(`${where}: residual must be float32, got ${residual.dtype}`);
  if (residual.shape.length !== x.shape.length || residual.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`${where}: residual has shape [${residual.shape}], expected x's [${x.shape}]`);
  }
}

/**
 * Which backends implement a capability of the contract (`groups` > 1, the residual) in their
 * fused kernels. A backend declares the kernel functions it registered; a declaration holds
 * only while those very kernels are registered, so a backend whose kernels are later replaced
 * by others of the same name that declare nothing (a test's or a user's own BatchNorm) takes
 * the fallback until its own are put back; wasm+onednn's kernels, which replace wasm's, declare
 * their own. "Those very kernels": the
 * registered function, or the registry entry (config object) that held it when declared — a
 * profiler that wraps kernelFunc in place in that entry (bench/op-timer.ts) must still measure
 * the path training runs, while a replacement registers a new entry.
 */
type DeclaredKernels = { forward: tf.KernelFunc; grad: tf.KernelFunc };
type Declaration = DeclaredKernels & { entries: Set<tf.KernelConfig> };
/** Per capability and backend, every declaration made (wasm's own kernels and oneDNN's that replace them both stay known). */
const declared = { groups: new Map<string, Declaration[]>(), residual: new Map<string, Declaration[]>() };

function declare(capability: keyof typeof declared, backendName: string, kernels: DeclaredKernels): void {
  const entries = new Set<tf.KernelConfig>();
  for (const [name, f] of [[FUSED_BATCH_NORM_KERNEL, kernels.forward], [FUSED_BATCH_NORM_GRAD_KERNEL, kernels.grad]] as const) {
    const entry = tf.getKernel(name, backendName);
    if (entry?.kernelFunc === f) entries.add(entry);
  }
  const others = (declared[capability].get(backendName) ?? []).filter((d) => d.forward !== kernels.forward || d.grad !== kernels.grad);
  declared[capability].set(backendName, [...others, { ...kernels, entries }]);
}

function holds(capability: keyof typeof declared, backendName: string): boolean {
  const forward = tf.getKernel(FUSED_BATCH_NORM_KERNEL, backendName);
  const grad = tf.getKernel(FUSED_BATCH_NORM_GRAD_KERNEL, backendName);
  const is = (d: Declaration, entry: tf.KernelConfig | undefined, f: tf.KernelFunc) => entry !== undefined && (entry.kernelFunc === f || d.entries.has(entry));
  return (declared[capability].get(backendName) ?? []).some((d) => is(d, forward, d.forward) && is(d, grad, d.grad));
}

export function declareGroupedBatchNorm(backendName: string, kernels: DeclaredKernels): void {
  declare('groups', backendName, kernels);
}

/** Whether the active backend's fused BatchNorm kernels (forward and gradient) implement groups. */
export function hasGroupedBatchNorm(backendName = tf.getBackend()): boolean {
  return holds('groups', backendName);
}

/** A backend whose fused kernels take the residual input (forward) and return dResidual (gradient). */
export function declareResidualBatchNorm(backendName: string, kernels: DeclaredKernels): void {
  declare('residual', backendName, kernels);
}

/** Whether the active backend's fused BatchNorm kernels (forward and gradient) implement the residual. */
export function hasResidualBatchNorm(backendName = tf.getBackend()): boolean {
  return holds('residual', backendName);
}

export interface BatchNormTrainResult {
  y: tf.Tensor;
  /** [C], or [groups, C] when groups > 1. */
  mean: tf.Tensor;
  variance: tf.Tensor;
}

export interface BatchNormTrainOptions {
  /** Separate statistics for each of this many equal contiguous parts of the batch (default 1). */
  groups?: number;
  /** Added to the normalised x before the ReLU: y = act(BN(x) + residual); x's shape. */
  residual?: tf.Tensor;
}

export function hasFusedBatchNorm(): boolean {
  return tf.getKernel(FUSED_BATCH_NORM_KERNEL, tf.getBackend()) !== undefined;
}

export function batchNormTrain(
  x: tf.Tensor,
  scale: tf.Tensor1D,
  offset: tf.Tensor1D,
  varianceEpsilon: number,
  relu: boolean,
  opts: BatchNormTrainOptions = {},
): BatchNormTrainResult {
  const groups = checkBatchNormGroups('batchNormTrain', x.shape, opts.groups);
  const { residual } = opts;
  checkBatchNormResidual('batchNormTrain', x, residual, residual !== undefined);
  if (!hasFusedBatchNorm()) return batchNormTrainComposite(x, scale, offset, varianceEpsilon, relu, { groups, residual });
  if (residual && !hasResidualBatchNorm()) return addResidual(batchNormTrain(x, scale, offset, varianceEpsilon, false, { groups }), residual, relu);
  const fused = (part: tf.Tensor, g: number, res: tf.Tensor | undefined): BatchNormTrainResult => {
    const inputs = res ? { x: part, scale, offset, residual: res } : { x: part, scale, offset };
    const [y, mean, variance] = tf.engine().runKernel(
      FUSED_BATCH_NORM_KERNEL,
      inputs as unknown as tf.NamedTensorMap,
      { varianceEpsilon, relu, groups: g, residual: res !== undefined } as unknown as tf.NamedAttrMap,
    ) as tf.Tensor[];
    return { y, mean, variance };
  };
  if (groups > 1 && !hasGroupedBatchNorm()) return perGroup(x, residual, groups, (part, res) => fused(part, 1, res));
  return fused(x, groups, residual);
}

/** Reference implementation from stock tfjs ops (also the fallback on every backend). */
export function batchNormTrainComposite(
  x: tf.Tensor,
  scale: tf.Tensor1D,
  offset: tf.Tensor1D,
  varianceEpsilon: number,
  relu: boolean,
  opts: BatchNormTrainOptions = {},
): BatchNormTrainResult {
  const groups = checkBatchNormGroups('batchNormTrainComposite', x.shape, opts.groups);
  const { residual } = opts;
  checkBatchNormResidual('batchNormTrainComposite', x, residual, residual !== undefined);
  if (residual) return addResidual(batchNormTrainComposite(x, scale, offset, varianceEpsilon, false, { groups }), residual, relu);
  const one = (part: tf.Tensor): BatchNormTrainResult => {
    const axes = part.shape.slice(0, -1).map((_, i) => i);
    const { mean, variance } = tf.moments(part, axes);
    const inv = tf.mul(tf.rsqrt(tf.add(variance, varianceEpsilon)), scale);
    const normed = tf.add(tf.mul(tf.sub(part, mean), inv), offset);
    const y = relu ? tf.relu(normed) : normed;
    return { y, mean, variance };
  };
  return groups === 1 ? one(x) : perGroup(x, undefined, groups, one);
}

/**
 * The residual for a kernel (or the composite) that has none: `bn` computed without ReLU, then
 * y = act(bn.y + residual) as tfjs ops (an Add and a Relu, as ResNet blocks ran before the
 * fused residual).
 */
function addResidual(bn: BatchNormTrainResult, residual: tf.Tensor, relu: boolean): BatchNormTrainResult {
  const sum = tf.add(bn.y, residual);
  if (!relu) return { ...bn, y: sum };
  const y = tf.relu(sum);
  sum.dispose();
  return { ...bn, y };
}

/**
 * Groups for a kernel (or the composite) that has none: x (and the residual) split along the
 * first axis, `one` run on each part, y concatenated back and the statistics stacked to
 * [groups, C].
 */
function perGroup(
  x: tf.Tensor,
  residual: tf.Tensor | undefined,
  groups: number,
  one: (part: tf.Tensor, residualPart: tf.Tensor | undefined) => BatchNormTrainResult,
): BatchNormTrainResult {
  return tf.tidy(() => {
    const residuals = residual ? tf.split(residual, groups, 0) : [];
    const parts = tf.split(x, groups, 0).map((part, i) => one(part, residuals[i]));
    return {
      y: tf.concat(parts.map((p) => p.y), 0),
      mean: tf.stack(parts.map((p) => p.mean)),
      variance: tf.stack(parts.map((p) => p.variance)),
    };
  });
}

/**
 * Throws, naming the operand, unless mean and variance (inputs of the gradient kernel, as the
 * forward returned them) have the shape `groups` gives them: [C] or [groups, C].
 */
export function checkBatchNormStats(kernel: string, stats: { mean: tf.TensorInfo; variance: tf.TensorInfo }, groups: number, C: number): void {
  const want = batchNormStatsShape(groups, C);
  for (const [name, t] of Object.entries(stats)) {
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new Error(`${kernel}: ${name} has shape [${t.shape}], expected [${want}] (groups = ${groups}, ${C} channels)`);
    }
  }
}

/**
 * BatchNorm's running statistics after one training batch, as one kernel call (PyTorch
 * semantics, momentum m, n = `count` elements per channel in the batch):
 *   inputs  { runningMean [C], runningVar [C], numBatchesTracked [] (int32), mean, variance }
 *           (mean, variance: the batch's, as FUSED_BATCH_NORM_KERNEL returns them, variance
 *           biased: [C], or [G, C] for a batch normalised in G groups)
 *   attrs   { momentum: number in [0, 1], count: integer ≥ 1 (elements per channel of each group) }
 *   outputs [ runningMean' = (1 − m)·runningMean + m·mean,
 *             runningVar'  = (1 − m)·runningVar + m·n/(n − 1)·variance  (n/(n − 1) → 1 when n = 1),
 *             numBatchesTracked' = numBatchesTracked + 1 (int32) ]
 * With [G, C] statistics the G updates are applied in order, g = 0 first, exactly as G
 * consecutive calls would (each result rounded to float32 before the next), and
 * numBatchesTracked' = numBatchesTracked + G: a grouped batch (MoCo's shuffle-BN) updates the
 * running statistics as the G separate batches it stands for.
 * Outputs are new tensors (the caller assigns them to its buffers). A training step updates the
 * running statistics of every BatchNorm call, so this is one dispatch where it was three
 * (two EMA updates and an add); backends compute it from `runningStatsCoefficients`.
 */
export const BATCH_NORM_RUNNING_STATS_KERNEL = 'MixMaskBatchNormRunningStats';

export interface RunningStatsInputs {
  runningMean: tf.TensorInfo;
  runningVar: tf.TensorInfo;
  numBatchesTracked: tf.TensorInfo;
  mean: tf.TensorInfo;
  variance: tf.TensorInfo;
}

export interface RunningStatsAttrs {
  momentum: number;
  count: number;
}

/**
 * Throws, naming the operand or attribute, unless the running-statistics operands are as the
 * contract says; returns C and G (the groups: 1 for [C] statistics).
 */
export function checkRunningStats(inputs: RunningStatsInputs, attrs: RunningStatsAttrs): { channels: number; groups: number } {
  const k = BATCH_NORM_RUNNING_STATS_KERNEL;
  for (const name of ['runningMean', 'runningVar', 'numBatchesTracked', 'mean', 'variance'] as const) {
    if (inputs[name] === undefined) throw new Error(`${k}: input ${name} is missing`);
  }
  const C = inputs.runningMean.shape[0];
  for (const name of ['runningMean', 'runningVar'] as const) {
    const t = inputs[name];
    if (t.dtype !== 'float32') throw new Error(`${k}: ${name} must be float32, got ${t.dtype}`);
    if (t.shape.length !== 1 || t.shape[0] !== C) throw new Error(`${k}: ${name} has shape [${t.shape}], expected [${C}] (runningMean's channels)`);
  }
  const G = inputs.mean.shape.length === 2 ? inputs.mean.shape[0] : 1;
  for (const name of ['mean', 'variance'] as const) {
    const t = inputs[name];
    if (t.dtype !== 'float32') throw new Error(`${k}: ${name} must be float32, got ${t.dtype}`);
    const ok = t.shape.length === 1 ? t.shape[0] === C && G === 1 : t.shape.length === 2 && t.shape[0] === G && t.shape[1] === C;
    if (!ok) throw new Error(`${k}: ${name} has shape [${t.shape}], expected [${C}] or [groups, ${C}] (runningMean's channels; mean's groups: ${G})`);
  }
  if (C === 0) throw new Error(`${k}: runningMean has no channels`);
  if (G === 0) throw new Error(`${k}: mean has no groups`);
  const nbt = inputs.numBatchesTracked;
  if (nbt.dtype !== 'int32' || nbt.shape.length !== 0) throw new Error(`${k}: numBatchesTracked must be an int32 scalar, got ${nbt.dtype} of shape [${nbt.shape}]`);
  const { momentum, count } = attrs;
  if (!(typeof momentum === 'number' && momentum >= 0 && momentum <= 1)) throw new Error(`${k}: momentum must be a number in [0, 1], got ${momentum}`);
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`${k}: count (elements per channel in the batch) must be an integer ≥ 1, got ${count}`);
  return { channels: C, groups: G };
}

/**
 * running' = keep·running + weight·batch, per statistic. In float64 here (1 − f32(m) would round
 * m first); each backend rounds these once to its precision.
 */
export function runningStatsCoefficients(attrs: RunningStatsAttrs): { keep: number; meanWeight: number; varWeight: number } {
  const { momentum: m, count: n } = attrs;
  return { keep: 1 - m, meanWeight: m, varWeight: n > 1 ? (m * n) / (n - 1) : m };
}

export function hasRunningStatsKernel(): boolean {
  return tf.getKernel(BATCH_NORM_RUNNING_STATS_KERNEL, tf.getBackend()) !== undefined;
}

/**
 * The new [runningMean, runningVar, numBatchesTracked] (contract above): the active backend's
 * kernel where it registers one, else the same formula in tfjs ops (one update per group).
 */
export function batchNormRunningStats(inputs: { runningMean: tf.Tensor; runningVar: tf.Tensor; numBatchesTracked: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor }, attrs: RunningStatsAttrs): [tf.Tensor1D, tf.Tensor1D, tf.Scalar] {
  const { groups } = checkRunningStats(inputs, attrs);
  if (hasRunningStatsKernel()) {
    return tf.engine().runKernel(BATCH_NORM_RUNNING_STATS_KERNEL, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as [tf.Tensor1D, tf.Tensor1D, tf.Scalar];
  }
  const { keep, meanWeight, varWeight } = runningStatsCoefficients(attrs);
  return tf.tidy(() => {
    const means = inputs.mean.rank === 1 ? [inputs.mean] : tf.unstack(inputs.mean);
    const variances = inputs.variance.rank === 1 ? [inputs.variance] : tf.unstack(inputs.variance);
    let mean = inputs.runningMean;
    let variance = inputs.runningVar;
    for (let g = 0; g < groups; g++) {
      mean = tf.add(tf.mul(mean, keep), tf.mul(means[g], meanWeight));
      variance = tf.add(tf.mul(variance, keep), tf.mul(variances[g], varWeight));
    }
    return [mean as tf.Tensor1D, variance as tf.Tensor1D, tf.add(inputs.numBatchesTracked, tf.scalar(groups, 'int32')) as tf.Scalar];
  });
}
