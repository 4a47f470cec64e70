import * as tf from '@tensorflow/tfjs';
import { FUSED_ADAM_UPDATE as MIXMASK_ADAM_UPDATE, FUSED_EMA_UPDATE as MIXMASK_EMA_UPDATE, FUSED_SGD_UPDATE as MIXMASK_SGD_UPDATE, checkAdamStep, checkFusedOperands } from '../fused-update-op';
import { type KernelArgs, type WebgpuBackendLike, type WebgpuProgram, addKernel } from './program';

/**
 * The fused update kernels of lib/backend/fused-update-op.ts (their contract) for webgpu: one
 * elementwise program per output tensor.
 */
export { FUSED_SGD_UPDATE as MIXMASK_SGD_UPDATE, FUSED_ADAM_UPDATE as MIXMASK_ADAM_UPDATE, FUSED_EMA_UPDATE as MIXMASK_EMA_UPDATE } from '../fused-update-op';

const WG = 64;

/** result[i] = <expression> over inputs of the same shape (float uniforms a, b, c, d). */
class ElementwiseProgram implements WebgpuProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'a : f32, b : f32, c : f32, d : f32,';
  size = true;

  constructor(
    readonly variableNames: string[],
    private readonly expression: string,
    key: string,
    shape: number[],
  ) {
    this.outputShape = shape;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = [Math.ceil(shape.reduce((p, q) => p * q, 1) / WG), 1, 1];
    this.shaderKey = `mixmaskUpdate_${key}`;
  }

  getUserCode(): string {
    return `
      fn main(i : i32) {
        if (i < uniforms.size) {
          result[i] = ${this.expression};
        }
      }
    `;
  }
}

function run(backend: WebgpuBackendLike, names: string[], inputs: tf.TensorInfo[], expression: string, key: string, f: number[]): tf.TensorInfo {
  const uniforms = [0, 1, 2, 3].map((i) => ({ type: 'float32' as const, data: [f[i] ?? 0] }));
  return backend.runWebGPUProgram(new ElementwiseProgram(names, expression, key, inputs[0].shape), inputs, 'float32', uniforms);
}

function sgdUpdate(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WebgpuBackendLike;
  const { w, g, v } = args.inputs as Record<string, tf.TensorInfo>;
  const { lr, momentum, weightDecay, nesterov } = args.attrs as unknown as { lr: number; momentum: number; weightDecay: number; nesterov?: boolean };
  checkFusedOperands(MIXMASK_SGD_UPDATE, { w, g, v });
  // a = μ, b = wd
  const v2 = run(backend, ['g', 'w', 'v'], [g, w, v], 'uniforms.a * v[i] + (g[i] + uniforms.b * w[i])', 'sgdVelocity', [momentum, weightDecay]);
  // a = μ, b = wd, c = lr
  // (An input the shader does not read would be missing from its bind group layout.)
  const w2 = nesterov
    ? run(backend, ['w', 'g', 'v'], [w, g, v2], 'w[i] - uniforms.c * (g[i] + uniforms.b * w[i] + uniforms.a * v[i])', 'sgdWeightNesterov', [momentum, weightDecay, lr])
    : run(backend, ['w', 'v'], [w, v2], 'w[i] - uniforms.c * v[i]', 'sgdWeight', [momentum, weightDecay, lr]);
  return [w2, v2];
}

function adamUpdate(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WebgpuBackendLike;
  const { w, g, m, v } = args.inputs as Record<string, tf.TensorInfo>;
  const a = args.attrs as unknown as { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number };
  checkFusedOperands(MIXMASK_ADAM_UPDATE, { w, g, m, v });
  checkAdamStep(a.step);
  const grad = '(g[i] + uniforms.b * w[i])';
  // a = β, b = wd, c = 1 − β (in float64 here: 1 − f32(0.999) is off by 1e-5 relative)
  const m2 = run(backend, ['g', 'w', 'm'], [g, w, m], `uniforms.a * m[i] + uniforms.c * ${grad}`, 'adamM', [a.beta1, a.weightDecay, 1 - a.beta1]);
  const v2 = run(backend, ['g', 'w', 'v'], [g, w, v], `uniforms.a * v[i] + uniforms.c * ${grad} * ${grad}`, 'adamV', [a.beta2, a.weightDecay, 1 - a.beta2]);
  // a = lr / (1 − β1^t), b = 1 − β2^t, c = eps
  const c1 = 1 - a.beta1 ** a.step;
  const c2 = 1 - a.beta2 ** a.step;
  const w2 = run(backend, ['w', 'm', 'v'], [w, m2, v2], 'w[i] - uniforms.a * m[i] / (sqrt(v[i] / uniforms.b) + uniforms.c)', 'adamW', [a.lr / c1, c2, a.eps]);
  return [w2, m2, v2];
}

function emaUpdate(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WebgpuBackendLike;
  const { target, online } = args.inputs as Record<string, tf.TensorInfo>;
  const { momentum, onlineScale } = args.attrs as unknown as { momentum: number; onlineScale?: number };
  checkFusedOperands(MIXMASK_EMA_UPDATE, { target, online });
  return [run(backend, ['t', 'o'], [target, online], 'uniforms.a * t[i] + uniforms.b * o[i]', 'ema', [momentum, (1 - momentum) * (onlineScale ?? 1)])];
}

let installed = false;

/** Registers the three update kernels for webgpu. Idempotent. */
export function installOptimizerUpdates(): void {
  if (installed) return;
  addKernel(MIXMASK_SGD_UPDATE, sgdUpdate);
  addKernel(MIXMASK_ADAM_UPDATE, adamUpdate);
  addKernel(MIXMASK_EMA_UPDATE, emaUpdate);
  installed = true;
}
