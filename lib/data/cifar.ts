import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArrayDataset } from './array-dataset';
import { dataRoot } from './paths';

/**
 * CIFAR-10 / CIFAR-100 in the official *binary* format (https://www.cs.toronto.edu/~kriz/cifar.html):
 * fixed-size records of label byte(s) followed by 3072 pixel bytes, red plane then green then
 * blue, each 32×32 row-major. CIFAR-10: <label> + pixels, 10000 records per file (data_batch_1..5,
 * test_batch). CIFAR-100: <coarse label> <fine label> + pixels, train.bin 50000, test.bin 10000.
 */
export type CifarKind = 'cifar10' | 'cifar100';
export type Split = 'train' | 'test';

export const CIFAR_PIXELS = 32 * 32 * 3;

interface CifarSpec {
  folder: string;
  labelBytes: number;
  numClasses: number;
  files: Record<Split, { name: string; records: number }[]>;
  classNamesFile: string;
}

export const CIFAR_SPECS: Record<CifarKind, CifarSpec> = {
  cifar10: {
    folder: 'cifar-10-batches-bin',
    labelBytes: 1,
    numClasses: 10,
    files: {
      train: [1, 2, 3, 4, 5].map((i) => ({ name: `data_batch_${i}.bin`, records: 10000 })),
      test: [{ name: 'test_batch.bin', records: 10000 }],
    },
    classNamesFile: 'batches.meta.txt',
  },
  cifar100: {
    folder: 'cifar-100-binary',
    labelBytes: 2,
    numClasses: 100,
    files: { train: [{ name: 'train.bin', records: 50000 }], test: [{ name: 'test.bin', records: 10000 }] },
    classNamesFile: 'fine_label_names.txt',
  },
};

export interface ParsedCifar {
  /** NHWC uint8. */
  pixels: Uint8Array;
  /** Fine labels for CIFAR-100. */
  labels: Int32Array;
  /** CIFAR-100 only: the 20 superclass labels. */
  coarse?: Int32Array;
}

/**
 * Parses one binary file's bytes. `records` is the count the file must hold ('any' accepts any
 * whole number of records — for tests and custom subsets). `file` names the source in errors.
 */
export function parseCifarBinary(buf: Uint8Array, kind: CifarKind, file: string, records: number | 'any'): ParsedCifar {
  const spec = CIFAR_SPECS[kind];
  const rec = spec.labelBytes + CIFAR_PIXELS;
  const what = `${kind === 'cifar10' ? 'CIFAR-10' : 'CIFAR-100'} binary file ${file}`;
  if (buf.length % rec !== 0) {
    throw new Error(
      `${what}: ${buf.length} bytes is not a whole number of ${rec}-byte records ` +
        `(${Math.floor(buf.length / rec)} records + ${buf.length % rec} stray bytes): the file is truncated or not in the binary format`,
    );
  }
  const n = buf.length / rec;
  if (records !== 'any' && n !== records) {
    throw new Error(
      `${what}: holds ${n} records (${buf.length} bytes), expected ${records} (${records * rec} bytes): ` +
        `the file is ${n < records ? 'truncated' : 'oversized'}`,
    );
  }
  const pixels = new Uint8Array(n * CIFAR_PIXELS);
  const labels = new Int32Array(n);
  const coarse = kind === 'cifar100' ? new Int32Array(n) : undefined;
  const plane = 32 * 32;
  for (let i = 0; i < n; i++) {
    const base = i * rec;
    const y = buf[base + spec.labelBytes - 1];
    if (y >= spec.numClasses) {
      throw new Error(`${what}: record ${i} (byte offset ${base + spec.labelBytes - 1}) has label ${y}, expected 0..${spec.numClasses - 1}`);
    }
    labels[i] = y;
    if (coarse) {
      const c = buf[base];
      if (c >= 20) throw new Error(`${what}: record ${i} (byte offset ${base}) has coarse label ${c}, expected 0..19`);
      coarse[i] = c;
    }
    // Planar CHW → interleaved HWC.
    const src = base + spec.labelBytes;
    const dst = i * CIFAR_PIXELS;
    for (let p = 0; p < plane; p++) {
      pixels[dst + 3 * p] = buf[src + p];
      pixels[dst + 3 * p + 1] = buf[src + plane + p];
      pixels[dst + 3 * p + 2] = buf[src + 2 * plane + p];
    }
  }
  return { pixels, labels, coarse };
}

/** Encodes images (NHWC uint8) and labels in the official binary format; used by tests and tools. */
export function encodeCifarBinary(kind: CifarKind, pixels: Uint8Array, labels: ArrayLike<number>, coarse?: ArrayLike<number>): Uint8Array {
  const spec = CIFAR_SPECS[kind];
  const rec = spec.labelBytes + CIFAR_PIXELS;
  const n = labels.length;
  if (pixels.length !== n * CIFAR_PIXELS) throw new Error(`encodeCifarBinary: ${pixels.length} pixel bytes for ${n} labels`);
  const out = new Uint8Array(n * rec);
  const plane = 32 * 32;
  for (let i = 0; i < n; i++) {
    const base = i * rec;
    if (kind === 'cifar100') out[base] = coarse ? coarse[i] : 0;
    out[base + spec.labelBytes - 1] = labels[i];
    const src = i * CIFAR_PIXELS;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) out[base + spec.labelBytes + c * plane + p] = pixels[src + 3 * p + c];
    }
  }
  return out;
}

export interface LoadCifarOptions {
  /** Folder holding the .bin files (default <dataRoot>/cifar-100-binary or cifar-10-batches-bin). */
  dir?: string;
  /** Records each file must hold (default: the official counts); 'any' for custom files. */
  records?: number | 'any';
}

/** Loads a CIFAR split into memory (150 MB for CIFAR-100 train as uint8). */
export function loadCifar(kind: CifarKind, split: Split, opts: LoadCifarOptions = {}): ArrayDataset {
  const spec = CIFAR_SPECS[kind];
  const dir = opts.dir ?? path.join(dataRoot(), spec.folder);
  const label = kind === 'cifar10' ? 'CIFAR-10' : 'CIFAR-100';
  if (!fs.existsSync(dir)) {
    throw new Error(
      `${label}: folder ${dir} does not exist; expected the extracted ${kind === 'cifar10' ? 'cifar-10-binary' : 'cifar-100-binary'}.tar.gz ` +
        `there (run \`npm run data -- ${kind}\`, or set MIXMASK_DATA to the folder above ${spec.folder})`,
    );
  }
  const parts: ParsedCifar[] = [];
  for (const f of spec.files[split]) {
    const file = path.join(dir, f.name);
    if (!fs.existsSync(file)) throw new Error(`${label}: missing file ${file}; expected ${f.name} (${f.records} records) from the official binary archive`);
    parts.push(parseCifarBinary(readFileOrThrow(file), kind, file, opts.records ?? f.records));
  }
  const n = parts.reduce((s, p) => s + p.labels.length, 0);
  const pixels = new Uint8Array(n * CIFAR_PIXELS);
  const labels = new Int32Array(n);
  let o = 0;
  for (const p of parts) {
    pixels.set(p.pixels, o * CIFAR_PIXELS);
    labels.set(p.labels, o);
    o += p.labels.length;
  }
  const namesFile = path.join(dir, spec.classNamesFile);
  let classNames: string[] | undefined;
  if (fs.existsSync(namesFile)) {
    const names = fs.readFileSync(namesFile, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter((s) => s !== '');
    if (names.length !== spec.numClasses) {
      throw new Error(`${label}: ${namesFile} lists ${names.length} class names, expected ${spec.numClasses}`);
    }
    classNames = names;
  }
  return new ArrayDataset({
    name: `${kind}-${split}`,
    pixels,
    labels,
    height: 32,
    width: 32,
    channels: 3,
    numClasses: spec.numClasses,
    classNames,
    source: dir,
  });
}

export function readFileOrThrow(file: string): Uint8Array {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
}
