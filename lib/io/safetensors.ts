import * as fs from 'node:fs';
import { writeFileAtomic } from './atomic';

/**
 * The safetensors format (8-byte little-endian header length, a JSON header, then raw
 * little-endian tensor bytes): what our checkpoints are written in, and what PyTorch users
 * load with `safetensors.torch.load_file`.
 */
export type SafeDtype = 'F32' | 'I32' | 'I64';

export interface SafeTensor {
  dtype: SafeDtype;
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array;
}

const BYTES: Record<SafeDtype, number> = { F32: 4, I32: 4, I64: 8 };

export function encodeSafetensors(tensors: Map<string, SafeTensor>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const expected = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== expected) {
      throw new Error(`safetensors: tensor "${name}" has ${t.data.length} values, its shape [${t.shape}] needs ${expected}`);
    }
    const bytes = t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keeps the data 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, pos);
    pos += t.data.byteLength;
  }
  return out;
}

export function decodeSafetensors(buf: Buffer, source = 'buffer'): { tensors: Map<string, SafeTensor>; metadata: Record<string, string> } {
  if (buf.length < 8) throw new Error(`${source}: not a safetensors file (${buf.length} bytes, expected at least 8)`);
  const headerLength = Number(buf.readBigUInt64LE(0));
  if (headerLength > buf.length - 8) {
    throw new Error(`${source}: truncated safetensors file (header says ${headerLength} bytes, file has ${buf.length - 8})`);
  }
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8'));
  } catch (e) {
    throw new Error(`${source}: unreadable safetensors header (${(e as Error).message})`);
  }
  const dataStart = 8 + headerLength;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors = new Map<string, SafeTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (!(dtype in BYTES)) throw new Error(`${source}: tensor "${name}" has dtype ${dtype}, expected one of F32, I32, I64`);
    const [begin, end] = data_offsets;
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * BYTES[dtype as SafeDtype] || dataStart + end > buf.length) {
      throw new Error(`${source}: tensor "${name}" spans bytes ${begin}–${end}, inconsistent with shape [${shape}] ${dtype} or the file size`);
    }
    // Copy into an aligned buffer: the data section need not be aligned for typed arrays.
    const bytes = new Uint8Array(buf.subarray(dataStart + begin, dataStart + end));
    const data =
      dtype === 'F32' ? new Float32Array(bytes.buffer) : dtype === 'I32' ? new Int32Array(bytes.buffer) : new BigInt64Array(bytes.buffer);
    tensors.set(name, { dtype: dtype as SafeDtype, shape, data });
  }
  return { tensors, metadata };
}

/** Writes atomically: a failed or interrupted write never leaves a half-written file behind. */
export function writeSafetensorsFile(file: string, tensors: Map<string, SafeTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

export function readSafetensorsFile(file: string): { tensors: Map<string, SafeTensor>; metadata: Record<string, string> } {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  return decodeSafetensors(fs.readFileSync(file), file);
}
