import * as tf from '@tensorflow/tfjs';

/**
 * What our webgpu kernels need from tfjs-backend-webgpu 4.22: a program object and
 * `runWebGPUProgram`. tfjs writes the shader's preamble (bindings named after `variableNames`,
 * `result` for the output, the `uniforms` struct with each input's and the output's shape, then
 * ours, in order; `localId`, `localIndex`, `workgroupId`, `numWorkgroups`) and calls our `main()`.
 * It caches compiled pipelines by `shaderKey` plus ranks and dtypes, not shapes, so every
 * constant baked into a shader's text must be part of its `shaderKey`.
 *
 * Dawn does not throw on an invalid shader: it prints "validation:" and the dispatch writes
 * nothing, so every program here is checked against the cpu backend in the tests.
 */
export interface WebgpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  /** Declarations appended to the uniforms struct, e.g. 'K : i32, chunk : i32,'. */
  uniforms?: string;
  /** Whether tfjs adds `size` (output elements) to the uniforms. */
  size?: boolean;
  outputComponent?: number;
  variableComponents?: number[];
  getUserCode(): string;
}

export type Uniform = { type: 'int32' | 'float32' | 'uint32'; data: number[] };

export interface WebgpuBackendLike extends tf.KernelBackend {
  device: { limits: { maxComputeWorkgroupsPerDimension: number } };
  incRef(dataId: tf.DataId): void;
  disposeData(dataId: tf.DataId): boolean;
  runWebGPUProgram(program: WebgpuProgram, inputs: tf.TensorInfo[], dtype: tf.DataType, uniforms?: Uniform[]): tf.TensorInfo;
}

/** The attributes tfjs gives both convolution-gradient kernels (each adds the shape it produces). */
export interface ConvGradAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
export type Kernel = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

/**
 * Replaces tfjs's webgpu kernel `name` with `kernel` and returns the stock one (our kernels
 * fall back to it for what they do not handle).
 */
export function replaceKernel(name: string, kernel: Kernel): Kernel {
  const stock = tf.getKernel(name, 'webgpu');
  if (!stock) throw new Error(`tfjs-backend-webgpu registered no '${name}' kernel: is @tensorflow/tfjs-backend-webgpu 4.22 imported?`);
  tf.unregisterKernel(name, 'webgpu');
  tf.registerKernel({ kernelName: name, backendName: 'webgpu', kernelFunc: kernel as unknown as tf.KernelFunc });
  return stock.kernelFunc as unknown as Kernel;
}

/** Registers `kernel` for a name tfjs has no webgpu kernel for (e.g. our fused BatchNorm). */
export function addKernel(name: string, kernel: Kernel): void {
  if (tf.getKernel(name, 'webgpu')) tf.unregisterKernel(name, 'webgpu');
  tf.registerKernel({ kernelName: name, backendName: 'webgpu', kernelFunc: kernel as unknown as tf.KernelFunc });
}

/** int32 uniforms, one scalar each, in the order of the program's `uniforms` declaration. */
export function ints(...values: number[]): Uniform[] {
  return values.map((v) => ({ type: 'int32', data: [v] }));
}

/** Tuning that depends on the adapter (set once the adapter is known; see ./index.ts). */
export const tuning = {
  /**
   * Workgroups a reduction over a long axis (split-K GEMMs, per-channel sums) aims to fill: a
   * GPU needs thousands of invocations in flight, a software adapter only one workgroup per core.
   */
  targetWorkgroups: 512,
  /** Cap on workgroups along y (null: the device's maxComputeWorkgroupsPerDimension; tests lower it). */
  maxWorkgroupsY: null as number | null,
};

export function setTuning(opts: { software: boolean }): void {
  tuning.targetWorkgroups = opts.software ? 8 : 512;
}
