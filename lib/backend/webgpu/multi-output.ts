import * as tf from '@tensorflow/tfjs';
import { noteDispatch } from './dispatches';
import type { Uniform } from './program';

/**
 * One compute dispatch that writes several output tensors. tfjs-backend-webgpu 4.22 runs a
 * program with exactly one output (`runWebGPUProgram`), so a kernel with k outputs costs k
 * dispatches there (BatchNorm's mean and variance, an optimiser's weight and velocity, …). This
 * runs a shader of ours on the backend's own command encoder and compute pass, in order with
 * tfjs's dispatches, under the same deferred-submit batching and, inside tf.profile, the same
 * timestamp queries; outputs are fresh tensors as tfjs's kernels make them (nothing is written
 * in place, so tensors that share a buffer stay intact).
 *
 * The shader is ours in full (no tfjs preamble). Its bindings, in @group(0): the outputs first
 * (`var<storage, read_write>`), then the inputs (`var<storage, read>`), in the order given, then,
 * when there are uniforms, one `var<uniform>` struct whose fields are the uniforms in order (each
 * a scalar f32 / i32 / u32: tfjs's uniform layout packs scalars 4 bytes apart). Every binding
 * must be used by the shader (the pipeline layout is derived from it). The entry point is `main`.
 * A device allows `maxStorageBuffersPerShaderStage` storage bindings (outputs + inputs): 16 on
 * Mesa's software adapter; see `storageBindingLimit`.
 */
export interface MultiOutputProgram {
  /** Name in dispatch counts and profiles. */
  name: string;
  /** Pipeline cache key: must change whenever the shader text does. */
  key: string;
  wgsl: () => string;
  outputs: Array<{ shape: number[]; dtype: tf.DataType }>;
  inputs: tf.TensorInfo[];
  uniforms?: Uniform[];
  dispatch: [number, number, number];
}

interface GpuLike {
  limits: { maxStorageBuffersPerShaderStage: number; maxComputeWorkgroupsPerDimension: number };
  createShaderModule(d: { code: string }): unknown;
  createComputePipeline(d: { layout: 'auto'; compute: { module: unknown; entryPoint: string } }): { getBindGroupLayout(i: number): unknown };
  createBindGroup(d: { layout: unknown; entries: Array<{ binding: number; resource: unknown }> }): unknown;
  createQuerySet(d: { type: string; count: number }): unknown;
}

interface PassLike {
  setPipeline(p: unknown): void;
  setBindGroup(i: number, g: unknown): void;
  dispatchWorkgroups(x: number, y: number, z: number): void;
}

/** The parts of tfjs-backend-webgpu 4.22's WebGPUBackend this uses (runWebGPUProgram's own steps). */
interface BackendInternals {
  device: GpuLike;
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  uploadToGPU(dataId: tf.DataId): void;
  tensorToBinding(t: tf.TensorInfo): unknown;
  makeUniforms(u: Uniform[]): unknown;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  getQueryTime(): Promise<number>;
  commandEncoder: { beginComputePass(d: object): PassLike };
  computePassEncoder: PassLike | null;
  commandQueueOwnedIds: Set<tf.DataId>;
  dispatchCountInPass: number;
  activeTimers: Array<{ name: string; query: Promise<number> }> | null;
  supportTimestampQuery: boolean;
  querySet: unknown;
  querySetCount: number;
}

const pipelines = new WeakMap<object, Map<string, { getBindGroupLayout(i: number): unknown }>>();

/** How many storage buffers (outputs + inputs) one dispatch may bind on the active webgpu device. */
export function storageBindingLimit(backend: tf.KernelBackend): number {
  return (backend as unknown as BackendInternals).device.limits.maxStorageBuffersPerShaderStage;
}

/** Runs `p` as one dispatch; returns its outputs in order. */
export function runMultiOutput(backend: tf.KernelBackend, p: MultiOutputProgram): tf.TensorInfo[] {
  const b = backend as unknown as BackendInternals;
  const storage = p.outputs.length + p.inputs.length;
  const limit = b.device.limits.maxStorageBuffersPerShaderStage;
  if (storage > limit) throw new Error(`${p.name}: ${storage} storage bindings, the device allows ${limit}`);
  if (p.outputs.some((o) => o.shape.some((d) => d === 0))) throw new Error(`${p.name}: an empty output`);
  const outputs = p.outputs.map((o) => b.makeTensorInfo(o.shape, o.dtype));
  for (const t of [...outputs, ...p.inputs]) b.uploadToGPU(t.dataId);

  let cache = pipelines.get(b.device);
  if (!cache) pipelines.set(b.device, (cache = new Map()));
  let pipeline = cache.get(p.key);
  if (!pipeline) {
    const module = b.device.createShaderModule({ code: p.wgsl() });
    pipeline = b.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    cache.set(p.key, pipeline);
  }
  const resources = [...outputs, ...p.inputs].map((t) => b.tensorToBinding(t));
  if (p.uniforms && p.uniforms.length > 0) resources.push(b.makeUniforms(p.uniforms));
  const bindGroup = b.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: resources.map((resource, binding) => ({ binding, resource })) });
  for (const t of [...p.inputs, ...outputs]) b.commandQueueOwnedIds.add(t.dataId);

  // As tfjs's recordAndSubmit: one pass per timed dispatch inside tf.profile, else the shared
  // pass, submitted every WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE dispatches.
  const timed = b.activeTimers != null && b.supportTimestampQuery;
  b.ensureCommandEncoderReady();
  if (timed) {
    b.endComputePassEncoder();
    if (b.querySet == null) b.querySet = b.device.createQuerySet({ type: 'timestamp', count: b.querySetCount });
    b.computePassEncoder = b.commandEncoder.beginComputePass({ timestampWrites: { querySet: b.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
  } else if (!b.computePassEncoder) {
    b.computePassEncoder = b.commandEncoder.beginComputePass({});
  }
  const pass = b.computePassEncoder!;
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(p.dispatch[0], p.dispatch[1], p.dispatch[2]);
  b.dispatchCountInPass++;
  noteDispatch(p.name);
  if (b.activeTimers != null) {
    b.endComputePassEncoder();
    b.activeTimers.push({ name: p.name, query: b.getQueryTime() });
  } else if (tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') <= b.dispatchCountInPass) {
    b.endComputePassEncoder();
    b.submitQueue();
  }
  return outputs;
}
