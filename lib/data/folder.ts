import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mapLimit } from '../util/concurrency';
import { decodeImageFile } from './decode';
import type { Dataset, RawBatch } from './types';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png'];

export interface ImageFolderOptions {
  /** Output size: every image is decoded and resized to this (number = square). */
  size: number | [number, number];
  /** 'cover' (default): scale the shorter side, centre-crop; 'fill': stretch. */
  fit?: 'cover' | 'fill';
  /** Images decoded at once (default 2 × cores; sharp runs them on libuv's thread pool). */
  concurrency?: number;
  /** Use these class folder names in this order (e.g. the train split's, for a val split). */
  classNames?: readonly string[];
  name?: string;
}

/**
 * ImageNet-style class folders, `root/<class>/**.{jpg,jpeg,png}` (torchvision's ImageFolder
 * layout; classes sorted by name → label). Streamed: only the file list is held in memory; each
 * batch is decoded on demand, so a 1.28 M-image ImageNet works in a few hundred MB.
 */
export class ImageFolderDataset implements Dataset {
  readonly name: string;
  readonly size: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly height: number;
  readonly width: number;
  readonly channels = 3 as const;
  readonly files: readonly string[];
  private readonly labels: Int32Array;
  private readonly fit: 'cover' | 'fill';
  private readonly concurrency: number;

  constructor(root: string, opts: ImageFolderOptions) {
    if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
      throw new Error(`image folder dataset: ${root} is not a folder; expected <root>/<class>/<image>.jpg|.png`);
    }
    const [h, w] = typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
    if (!(Number.isInteger(h) && h > 0 && Number.isInteger(w) && w > 0)) throw new Error(`image folder dataset: size must be positive integers, got ${opts.size}`);
    const found = fs
      .readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name)
      .sort();
    const classNames = opts.classNames ? [...opts.classNames] : found;
    if (classNames.length === 0) throw new Error(`image folder dataset: ${root} has no class folders; expected <root>/<class>/<image>.jpg|.png`);
    const files: string[] = [];
    const labels: number[] = [];
    classNames.forEach((c, y) => {
      const dir = path.join(root, c);
      if (!fs.existsSync(dir)) throw new Error(`image folder dataset: missing class folder ${dir} (class ${y} of ${classNames.length})`);
      const imgs = listImages(dir);
      if (imgs.length === 0) throw new Error(`image folder dataset: class folder ${dir} is empty; expected at least one ${IMAGE_EXTENSIONS.join('/')} file`);
      for (const f of imgs) {
        files.push(f);
        labels.push(y);
      }
    });
    for (const c of found) {
      if (!classNames.includes(c)) throw new Error(`image folder dataset: folder ${path.join(root, c)} is not one of the ${classNames.length} given classes`);
    }
    this.name = opts.name ?? path.basename(path.resolve(root));
    this.files = files;
    this.labels = Int32Array.from(labels);
    this.size = files.length;
    this.numClasses = classNames.length;
    this.classNames = classNames;
    this.height = h;
    this.width = w;
    this.fit = opts.fit ?? 'cover';
    this.concurrency = opts.concurrency ?? 2 * (os.availableParallelism?.() ?? os.cpus().length);
  }

  label(i: number): number {
    return this.labels[i];
  }

  async read(indices: ArrayLike<number>): Promise<RawBatch> {
    return readDecoded(this, Array.from(indices), (i) => this.files[i], (i) => this.labels[i], this.fit, this.concurrency);
  }
}

/** Decodes files into one RawBatch, resized to the dataset's size. Shared with Tiny-ImageNet. */
export async function readDecoded(
  ds: { name: string; size: number; height: number; width: number },
  indices: number[],
  fileOf: (i: number) => string,
  labelOf: (i: number) => number,
  fit: 'cover' | 'fill',
  concurrency: number,
): Promise<RawBatch> {
  const n = indices.length;
  const row = ds.height * ds.width * 3;
  const pixels = new Uint8Array(n * row);
  const labels = new Int32Array(n);
  await mapLimit(indices, concurrency, async (i, k) => {
    if (!Number.isInteger(i) || i < 0 || i >= ds.size) throw new Error(`${ds.name}: index ${i} out of range [0, ${ds.size})`);
    const img = await decodeImageFile(fileOf(i), { resize: { height: ds.height, width: ds.width, fit } });
    pixels.set(img.pixels, k * row);
    labels[k] = labelOf(i);
  });
  return { pixels, labels, indices: Int32Array.from(indices), n, height: ds.height, width: ds.width, channels: 3 };
}

/** Image files under `dir`, recursively, sorted (deterministic order across machines). */
export function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (IMAGE_EXTENSIONS.includes(path.extname(e.name).toLowerCase())) out.push(p);
    }
  };
  walk(dir);
  return out;
}
