import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { ArrayDataset } from './array-dataset';
import type { Split } from './cifar';
import { FASHION_MNIST_DEBIAN_DIR } from './paths';

/**
 * IDX files (the MNIST family): bytes 0–1 are zero, byte 2 the element type (0x08 = uint8),
 * byte 3 the number of dimensions, then one big-endian uint32 per dimension, then the data.
 * The header is authoritative: counts and sizes come from it, never from assumptions.
 */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export function parseIdx(bytes: Uint8Array, file: string, expectedDims?: number): IdxArray {
  let buf = bytes;
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch (e) {
      throw new Error(`IDX file ${file}: gzip data is corrupt or truncated (${(e as Error).message})`);
    }
  }
  if (buf.length < 4) throw new Error(`IDX file ${file}: ${buf.length} bytes, too short for the 4-byte magic number`);
  const magic = ((buf[0] << 24) | (buf[1] << 16) | (buf[2] << 8) | buf[3]) >>> 0;
  if (buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08) {
    throw new Error(
      `IDX file ${file}: bad magic number 0x${magic.toString(16).padStart(8, '0')}; expected 0x000008NN ` +
        `(uint8 data, NN dimensions: 0x00000801 for labels, 0x00000803 for images)`,
    );
  }
  const nd = buf[3];
  if (expectedDims !== undefined && nd !== expectedDims) {
    throw new Error(`IDX file ${file}: magic 0x${magic.toString(16).padStart(8, '0')} says ${nd} dimensions, expected ${expectedDims}`);
  }
  const headerBytes = 4 + 4 * nd;
  if (buf.length < headerBytes) throw new Error(`IDX file ${file}: ${buf.length} bytes, too short for a ${nd}-dimension header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const have = buf.length - headerBytes;
  if (have !== count) {
    throw new Error(
      `IDX file ${file}: header declares dims [${dims.join(', ')}] = ${count} bytes of data, file holds ${have}: ` +
        `${have < count ? 'truncated' : 'trailing bytes'}`,
    );
  }
  return { dims, data: buf.subarray(headerBytes) };
}

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

export interface LoadIdxDatasetOptions {
  /** Folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (default: Debian's /usr/share/datasets/fashion-mnist). */
  dir?: string;
  name?: string;
  classNames?: readonly string[];
  numClasses?: number;
}

/**
 * Fashion-MNIST (or MNIST, same layout) from IDX files, gzipped or not. Default folder: the Debian
 * package dataset-fashion-mnist — the offline real-data default of this project. Images are
 * 28×28 grayscale, stored with 1 channel and replicated to 3 when they become tensors.
 */
export function loadFashionMnist(split: Split, opts: LoadIdxDatasetOptions = {}): ArrayDataset {
  const dir = opts.dir ?? FASHION_MNIST_DEBIAN_DIR;
  const prefix = split === 'train' ? 'train' : 't10k';
  const imagesFile = findIdx(dir, `${prefix}-images-idx3-ubyte`);
  const labelsFile = findIdx(dir, `${prefix}-labels-idx1-ubyte`);
  const images = parseIdx(fs.readFileSync(imagesFile), imagesFile, 3);
  const labels = parseIdx(fs.readFileSync(labelsFile), labelsFile, 1);
  const [n, h, w] = images.dims;
  if (labels.dims[0] !== n) {
    throw new Error(`IDX image/label count mismatch: ${imagesFile} holds ${n} images, ${labelsFile} holds ${labels.dims[0]} labels`);
  }
  const classNames = opts.classNames ?? (opts.numClasses === undefined || opts.numClasses === 10 ? FASHION_MNIST_CLASSES : undefined);
  const numClasses = opts.numClasses ?? classNames?.length ?? 10;
  const lab = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const y = labels.data[i];
    if (y >= numClasses) throw new Error(`IDX labels file ${labelsFile}: label ${y} of sample ${i} is out of range [0, ${numClasses})`);
    lab[i] = y;
  }
  return new ArrayDataset({
    name: `${opts.name ?? 'fashion-mnist'}-${split}`,
    pixels: images.data,
    labels: lab,
    height: h,
    width: w,
    channels: 1,
    numClasses,
    classNames,
    source: imagesFile,
  });
}

function findIdx(dir: string, base: string): string {
  for (const name of [base + '.gz', base]) {
    const f = path.join(dir, name);
    if (fs.existsSync(f)) return f;
  }
  const hint = dir === FASHION_MNIST_DEBIAN_DIR ? ' (install the Debian package dataset-fashion-mnist: apt-get install dataset-fashion-mnist)' : '';
  throw new Error(`IDX dataset: missing file ${path.join(dir, base)}.gz (or uncompressed ${base}) in ${dir}${hint}`);
}
