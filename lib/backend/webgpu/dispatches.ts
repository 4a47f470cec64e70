import * as tf from '@tensorflow/tfjs';

/**
 * Counts GPU dispatches on the webgpu backend: every `runWebGPUProgram` call records one compute
 * dispatch (empty outputs excepted), whichever kernel made it, and so does every dispatch of our
 * multi-output programs (./multi-output.ts, through `noteDispatch`). tf.profile counts kernels
 * instead, which include views without a dispatch (Reshape, Identity), kernels run on the CPU
 * for small inputs, and kernels made of several programs.
 */
export interface DispatchCount {
  total: number;
  /** Dispatches per program class name (e.g. Conv2DMMProgram) or multi-output program name. */
  byProgram: Map<string, number>;
}

interface RunsPrograms {
  runWebGPUProgram(program: { constructor: { name: string }; outputShape: number[] }, ...rest: unknown[]): tf.TensorInfo;
}

/** The count in progress, if any (one at a time). */
let active: DispatchCount | null = null;

/** Records one dispatch of program `name` when a count is in progress. */
export function noteDispatch(name: string): void {
  if (!active) return;
  active.total++;
  active.byProgram.set(name, (active.byProgram.get(name) ?? 0) + 1);
}

/** Runs `fn` with the active webgpu backend's dispatches counted; counting stops when it settles. */
export async function countDispatches<T>(fn: () => T | Promise<T>): Promise<{ result: T; count: DispatchCount }> {
  if (tf.getBackend() !== 'webgpu') throw new Error(`countDispatches: the active backend is '${tf.getBackend()}', not webgpu`);
  if (active) throw new Error('countDispatches: a count is already in progress');
  const backend = tf.backend() as unknown as RunsPrograms;
  const count: DispatchCount = { total: 0, byProgram: new Map() };
  const original = backend.runWebGPUProgram;
  backend.runWebGPUProgram = function (this: RunsPrograms, program, ...rest) {
    if (program.outputShape.every((d) => d > 0)) noteDispatch(program.constructor.name);
    return original.call(this, program, ...rest);
  };
  active = count;
  try {
    return { result: await fn(), count };
  } finally {
    active = null;
    backend.runWebGPUProgram = original;
  }
}
