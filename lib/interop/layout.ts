import { SafeTensor } from '../io/safetensors';

/**
 * Layout conversions between our tensors and PyTorch's, on plain typed arrays (no tfjs: a
 * ResNet-50 is converted without holding a second copy on a backend).
 *
 * - convolution weights: ours HWIO [kh, kw, in, out], PyTorch OIHW [out, in, kh, kw];
 * - linear weights: ours [in, out], PyTorch [out, in];
 * - BatchNorm's num_batches_tracked: ours int32, PyTorch int64.
 */

/** Moves axes like tf.transpose: output axis j is input axis perm[j]. */
export function permuteAxes<T extends Float32Array | Int32Array>(data: T, shape: readonly number[], perm: readonly number[]): T {
  const rank = shape.length;
  if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new Error(`permuteAxes: [${perm}] is not a permutation of the ${rank} axes of shape [${shape}]`);
  }
  const size = shape.reduce((a, b) => a * b, 1);
  if (data.length !== size) throw new Error(`permuteAxes: ${data.length} values for shape [${shape}]`);
  const inStrides = new Array<number>(rank);
  for (let i = rank - 1, s = 1; i >= 0; s *= shape[i], i--) inStrides[i] = s;
  const outShape = perm.map((p) => shape[p]);
  const strides = perm.map((p) => inStrides[p]); // input stride of each output axis
  const out = new (data.constructor as { new (n: number): T })(size);
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  // Odometer over the output in row-major order; src follows with the permuted strides.
  for (let o = 0; o < size; o++) {
    out[o] = data[src];
    for (let a = rank - 1; a >= 0; a--) {
      idx[a]++;
      src += strides[a];
      if (idx[a] < outShape[a]) break;
      src -= strides[a] * outShape[a];
      idx[a] = 0;
    }
  }
  return out;
}

const HWIO_TO_OIHW = [3, 2, 0, 1];
const OIHW_TO_HWIO = [2, 3, 1, 0];

/** The PyTorch shape of one of our tensors (conv weights are rank 4, linear weights rank 2). */
export function torchShape(ourShape: readonly number[]): number[] {
  if (ourShape.length === 4) return HWIO_TO_OIHW.map((p) => ourShape[p]);
  if (ourShape.length === 2) return [ourShape[1], ourShape[0]];
  return [...ourShape];
}

/** One of our tensors (float32 or int32) in PyTorch's layout and dtype. */
export function toTorchTensor(t: SafeTensor, name: string): SafeTensor {
  if (t.dtype === 'I32') {
    // Integer state is BatchNorm's step counter: PyTorch keeps it as int64.
    const data = new BigInt64Array(t.data.length);
    (t.data as Int32Array).forEach((v, i) => (data[i] = BigInt(v)));
    return { dtype: 'I64', shape: [...t.shape], data };
  }
  if (t.dtype !== 'F32') throw new Error(`export: tensor "${name}" is ${t.dtype}, expected F32 or I32`);
  const data = t.data as Float32Array;
  if (t.shape.length === 4) return { dtype: 'F32', shape: torchShape(t.shape), data: permuteAxes(data, t.shape, HWIO_TO_OIHW) };
  if (t.shape.length === 2) return { dtype: 'F32', shape: torchShape(t.shape), data: permuteAxes(data, t.shape, [1, 0]) };
  return { dtype: 'F32', shape: [...t.shape], data: Float32Array.from(data) };
}

/**
 * A PyTorch tensor converted to our layout, checked against the shape and dtype we expect.
 * Errors name the source, the key and both shapes in PyTorch's layout (what the user sees in
 * their own state_dict).
 */
export function fromTorchTensor(
  t: SafeTensor,
  expected: { shape: readonly number[]; dtype: 'float32' | 'int32' },
  key: string,
  source: string,
): SafeTensor {
  const want = torchShape(expected.shape);
  const sameShape = t.shape.length === want.length && t.shape.every((d, i) => d === want[i]);
  if (!sameShape) {
    throw new Error(`${source}: tensor "${key}" has shape [${t.shape}], expected [${want}] (PyTorch layout)`);
  }
  if (expected.dtype === 'int32') {
    if (t.dtype === 'F32') throw new Error(`${source}: tensor "${key}" is F32, expected an integer tensor (I64 or I32)`);
    const data = new Int32Array(t.data.length);
    // Step counters beyond 2^31 only lose meaning, not correctness: clamp rather than wrap.
    t.data.forEach((v: number | bigint, i: number) => (data[i] = Number(v > 2147483647 ? 2147483647 : v)));
    return { dtype: 'I32', shape: [...expected.shape], data };
  }
  if (t.dtype !== 'F32') throw new Error(`${source}: tensor "${key}" is ${t.dtype}, expected F32`);
  const data = t.data as Float32Array;
  if (t.shape.length === 4) return { dtype: 'F32', shape: [...expected.shape], data: permuteAxes(data, t.shape, OIHW_TO_HWIO) };
  if (t.shape.length === 2) return { dtype: 'F32', shape: [...expected.shape], data: permuteAxes(data, t.shape, [1, 0]) };
  return { dtype: 'F32', shape: [...expected.shape], data };
}
