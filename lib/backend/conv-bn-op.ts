import * as tf from '@tensorflow/tfjs';

/**
 * An evaluation-mode ResNet layer: convolution, BatchNorm with running statistics, optionally a
 * residual, optionally ReLU —
 *   y = act(conv(x, filter·s) + (offset − mean·s) [+ residual]),  s = scale / √(variance + ε),
 * i.e. act(BN(conv(x)) [+ residual]) with BatchNorm folded into the filter and a bias (in
 * evaluation BN is an affine map per output channel).
 *
 * A backend may register a kernel under `CONV_BN_EVAL_KERNEL` (wasm+onednn: the folding, the
 * convolution, the residual and the ReLU in one native call, lib/backend/onednn/kernels.ts);
 * elsewhere `convBnEval` runs the composite below (the folding as tfjs ops, one
 * tf.fused.conv2d, then Add and Relu where a residual follows). Contract of the kernel:
 *   inputs  { x: [N, H, W, Ci], filter: [KH, KW, Ci, Co], scale, offset, mean, variance: [Co],
 *             residual?: the output's shape }
 *   attrs   { strides: number, pad: number (symmetric zero padding, as torch.nn.Conv2d),
 *             varianceEpsilon: number, relu: boolean, residual: boolean (whether it is given) }
 *   output  y: [N, OH, OW, Co], float32
 * Its gradient is registered here for every backend (below), so differentiating through an
 * evaluation-mode network (saliency maps, adversarial inputs) works wherever the kernel runs.
 */
export const CONV_BN_EVAL_KERNEL = 'MixMaskConvBatchNormEval';

export interface ConvBnEvalInputs {
  x: tf.Tensor4D;
  filter: tf.Tensor4D;
  scale: tf.Tensor1D;
  offset: tf.Tensor1D;
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  residual?: tf.Tensor4D;
}

export interface ConvBnEvalAttrs {
  strides: number;
  pad: number;
  varianceEpsilon: number;
  relu: boolean;
  residual: boolean;
}

/**
 * Throws, naming the operand or attribute, unless inputs and attrs are as the contract says;
 * returns the output shape.
 */
export function checkConvBnEval(where: string, inputs: { [K in keyof ConvBnEvalInputs]: tf.TensorInfo | undefined }, attrs: ConvBnEvalAttrs): [number, number, number, number] {
  const { x, filter, residual } = inputs;
  for (const name of ['x', 'filter', 'scale', 'offset', 'mean', 'variance'] as const) {
    const t = inputs[name];
    if (t === undefined) throw new Error(`${where}: input ${name} is missing`);
    if (t.dtype !== 'float32') throw new Error(`${where}: ${name} must be float32, got ${t.dtype}`);
  }
  if (x!.shape.length !== 4) throw new Error(`${where}: x must be [N, H, W, C], got shape [${x!.shape}]`);
  if (filter!.shape.length !== 4) throw new Error(`${where}: filter must be [KH, KW, Ci, Co], got shape [${filter!.shape}]`);
  const [kh, kw, ci, co] = filter!.shape;
  if (ci !== x!.shape[3]) throw new Error(`${where}: filter has ${ci} input channels, x has ${x!.shape[3]}`);
  for (const name of ['scale', 'offset', 'mean', 'variance'] as const) {
    const s = inputs[name]!.shape;
    if (s.length !== 1 || s[0] !== co) throw new Error(`${where}: ${name} has shape [${s}], expected [${co}] (the filter's output channels)`);
  }
  const { strides, pad, varianceEpsilon } = attrs;
  if (!(Number.isInteger(strides) && strides >= 1)) throw new Error(`${where}: strides must be a positive integer, got ${strides}`);
  if (!(Number.isInteger(pad) && pad >= 0)) throw new Error(`${where}: pad must be an integer ≥ 0, got ${pad}`);
  if (!(typeof varianceEpsilon === 'number' && varianceEpsilon > 0)) throw new Error(`${where}: varianceEpsilon must be a positive number, got ${varianceEpsilon}`);
  const [n, h, w] = x!.shape;
  const oh = Math.floor((h + 2 * pad - kh) / strides) + 1;
  const ow = Math.floor((w + 2 * pad - kw) / strides) + 1;
  if (oh < 1 || ow < 1) throw new Error(`${where}: a ${kh}×${kw} filter with pad ${pad} does not fit x of shape [${x!.shape}]`);
  const out: [number, number, number, number] = [n, oh, ow, co];
  if (!!attrs.residual !== (residual !== undefined)) throw new Error(`${where}: attrs.residual is ${!!attrs.residual} but the residual input is ${residual === undefined ? 'missing' : 'given'}`);
  if (residual !== undefined) {
    if (residual.dtype !== 'float32') throw new Error(`${where}: residual must be float32, got ${residual.dtype}`);
    if (residual.shape.length !== 4 || residual.shape.some((d, i) => d !== out[i])) throw new Error(`${where}: residual has shape [${residual.shape}], expected the output's [${out}]`);
  }
  return out;
}

/** The contract in tfjs ops (the fallback, and the reference the kernels are tested against). */
export function convBnEvalComposite(inputs: ConvBnEvalInputs, attrs: ConvBnEvalAttrs): tf.Tensor4D {
  const { x, filter, scale, offset, mean, variance, residual } = inputs;
  return tf.tidy(() => {
    const s = tf.mul(scale, tf.rsqrt(tf.add(variance, attrs.varianceEpsilon)));
    const shift = tf.sub(offset, tf.mul(mean, s)) as tf.Tensor1D;
    const folded = tf.mul(filter, s) as tf.Tensor4D;
    const activation = attrs.relu && !residual ? 'relu' : 'linear';
    const out = tf.fused.conv2d({ x, filter: folded, strides: attrs.strides, pad: attrs.pad, bias: shift, activation }) as tf.Tensor4D;
    if (!residual) return out;
    const y = tf.add(out, residual) as tf.Tensor4D;
    return attrs.relu ? tf.relu(y) : y;
  });
}

const INPUT_ORDER = ['x', 'filter', 'scale', 'offset', 'mean', 'variance', 'residual'] as const;

/**
 * The gradient, for every backend. With g = dy·[y > 0] (ReLU) or dy, r = rsqrt(σ² + ε),
 * s = γ·r, W' = W·s, shift = β − μ·s:
 *   dx = conv⁻¹(g, W')  (Conv2DBackpropInput),  dW' = Conv2DBackpropFilter(x, g),  dW = dW'·s,
 *   dshift = Σ g,  ds = Σ dW'·W − μ·dshift,  dβ = dshift,  dμ = −s·dshift,  dγ = ds·r,
 *   dσ² = −½·ds·γ·r³,  dresidual = g.
 */
function registerGradient(): void {
  if (tf.getGradient(CONV_BN_EVAL_KERNEL)) return;
  tf.registerGradient({
    kernelName: CONV_BN_EVAL_KERNEL,
    inputsToSave: ['x', 'filter', 'scale', 'mean', 'variance'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter, scale, mean, variance, y] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D, tf.Tensor4D];
      const a = attrs as unknown as ConvBnEvalAttrs;
      const g = (a.relu ? tf.mul(dy as tf.Tensor, tf.step(y)) : dy) as tf.Tensor4D;
      const r = tf.rsqrt(tf.add(variance, a.varianceEpsilon));
      const s = tf.mul(scale, r);
      const folded = tf.mul(filter, s) as tf.Tensor4D;
      const convAttrs = { strides: a.strides, pad: a.pad, dataFormat: 'NHWC', dilations: 1, dimRoundingMode: undefined };
      // Shared by three inputs' gradients, so computed here (the engine runs each input's closure
      // in its own tidy: a tensor kept from one closure would be gone in the next).
      const dFolded = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: g }, { ...convAttrs, filterShape: filter.shape } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
      const dShift = tf.sum(g, [0, 1, 2]);
      const dS = tf.sub(tf.sum(tf.mul(dFolded, filter), [0, 1, 2]), tf.mul(mean, dShift));
      const grads: Record<string, () => tf.Tensor> = {
        x: () => tf.engine().runKernel('Conv2DBackpropInput', { dy: g, filter: folded }, { ...convAttrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor,
        filter: () => tf.mul(dFolded, s),
        scale: () => tf.mul(dS, r),
        offset: () => dShift,
        mean: () => tf.neg(tf.mul(s, dShift)),
        variance: () => tf.mul(tf.mul(dS, tf.mul(scale, tf.pow(r, 3))), -0.5),
      };
      if (a.residual) grads.residual = () => g;
      return grads;
    },
  });
}

export function hasConvBnEvalKernel(backendName = tf.getBackend()): boolean {
  return tf.getKernel(CONV_BN_EVAL_KERNEL, backendName) !== undefined;
}

/** act(BN(conv(x)) [+ residual]) in evaluation mode: the active backend's kernel, else the composite. */
export function convBnEval(inputs: ConvBnEvalInputs, attrs: Omit<ConvBnEvalAttrs, 'residual'>): tf.Tensor4D {
  const full: ConvBnEvalAttrs = { ...attrs, residual: inputs.residual !== undefined };
  checkConvBnEval('convBnEval', inputs, full);
  if (!hasConvBnEvalKernel() || inputs.x.size === 0) return convBnEvalComposite(inputs, full);
  registerGradient();
  const named = Object.fromEntries(INPUT_ORDER.filter((n) => inputs[n] !== undefined).map((n) => [n, inputs[n]]));
  return tf.engine().runKernel(CONV_BN_EVAL_KERNEL, named as unknown as tf.NamedTensorMap, full as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}
