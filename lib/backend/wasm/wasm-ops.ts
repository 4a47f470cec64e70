import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * Small helpers for kernels written in terms of the wasm backend's own kernels. Inside a kernel
 * we work on TensorInfos (no engine tensors, no tape): intermediates are created by the stock
 * kernels or by `alloc`, and every one of them must be released with `release`.
 */
export type Info = tf.TensorInfo;

/** Runs a stock wasm kernel directly (not through the engine: no tape, no profiling entry). */
export function call(backend: BackendWasm, kernelName: string, inputs: Record<string, Info>, attrs: object = {}): Info {
  const k = tf.getKernel(kernelName, 'wasm');
  if (!k) throw new Error(`wasm kernel ${kernelName} is not registered`);
  return k.kernelFunc({ inputs, backend, attrs: attrs as tf.NamedAttrMap }) as Info;
}

export function release(backend: BackendWasm, ...infos: Array<Info | null | undefined>): void {
  for (const t of infos) if (t) backend.disposeData(t.dataId);
}

/** A new float32 tensor on the wasm heap (uninitialised memory). */
export function alloc(backend: BackendWasm, shape: number[]): Info {
  return backend.makeOutput(shape, 'float32');
}

/**
 * Float32 view of a tensor's memory. Take views only after the allocations of a step: a heap
 * growth replaces the buffer (views taken before keep pointing at the old, shorter one).
 */
export function f32(backend: BackendWasm, t: Info): Float32Array {
  return backend.typedArrayFromHeap(t) as Float32Array;
}

/** The whole heap as float32 (for copyWithin between tensors), and a tensor's offset in it. */
export function heapF32(backend: BackendWasm): Float32Array {
  const buf = (backend.wasm as unknown as { HEAPU8: Uint8Array }).HEAPU8.buffer;
  return new Float32Array(buf);
}

export function offsetF32(backend: BackendWasm, t: Info): number {
  return backend.getMemoryOffset(t.dataId) / 4;
}

export function transpose(backend: BackendWasm, x: Info, perm: number[]): Info {
  return call(backend, 'Transpose', { x }, { perm });
}

export function slice(backend: BackendWasm, x: Info, begin: number[], size: number[]): Info {
  return call(backend, 'Slice', { x }, { begin, size });
}

/** Explicit padding in tfjs's format: [[0,0],[top,bottom],[left,right],[0,0]]. */
export function conv2d(
  backend: BackendWasm,
  x: Info,
  filter: Info,
  pads: { top: number; bottom: number; left: number; right: number },
  dilations: [number, number] = [1, 1],
): Info {
  const pad = [
    [0, 0],
    [pads.top, pads.bottom],
    [pads.left, pads.right],
    [0, 0],
  ];
  return call(backend, 'Conv2D', { x, filter }, { strides: [1, 1], pad, dilations, dataFormat: 'NHWC', dimRoundingMode: undefined });
}

/** A TensorInfo aliasing part of another tensor's memory (no copy); free it with releaseView. */
export function view(backend: BackendWasm, base: Info, offsetElems: number, shape: number[]): Info {
  const offset = backend.getMemoryOffset(base.dataId) + 4 * offsetElems;
  return backend.makeOutput(shape, 'float32', offset);
}

/** Forgets a view without freeing the memory it aliases. */
export function releaseView(backend: BackendWasm, v: Info): void {
  const data = backend.dataIdMap.get(v.dataId);
  if (!data) return;
  // Dropping the id from the C++ side also drops XNNPACK operators cached for it.
  (backend.wasm as unknown as { tfjs: { disposeData(id: number): void } }).tfjs.disposeData(data.id);
  backend.dataIdMap.delete(v.dataId);
}

/** A convolution's shapes, strides and top/left pads (from tfjs's own conv info), as every gradient kernel uses them. */
export interface Geometry {
  N: number;
  H: number;
  W: number;
  Ci: number;
  OH: number;
  OW: number;
  Co: number;
  KH: number;
  KW: number;
  sh: number;
  sw: number;
  top: number;
  left: number;
}

export function geometry(
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: { strides: number | [number, number]; pad: unknown; dataFormat?: string; dimRoundingMode?: unknown },
): Geometry {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') {
    throw new Error(`wasm conv gradient: only NHWC is supported, got dataFormat '${attrs.dataFormat}'`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs.strides,
    1,
    attrs.pad as 'same',
    attrs.dimRoundingMode as 'floor' | undefined,
  );
  return {
    N: info.batchSize,
    H: info.inHeight,
    W: info.inWidth,
    Ci: info.inChannels,
    OH: info.outHeight,
    OW: info.outWidth,
    Co: info.outChannels,
    KH: info.filterHeight,
    KW: info.filterWidth,
    sh: info.strideHeight,
    sw: info.strideWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
}
