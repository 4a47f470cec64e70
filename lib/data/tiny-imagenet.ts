import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ArrayDataset } from './array-dataset';
import { listImages, readDecoded } from './folder';
import { cacheRoot, dataRoot } from './paths';

/**
 * Tiny-ImageNet-200 (http://cs231n.stanford.edu/tiny-imagenet-200.zip): 200 classes listed in
 * wnids.txt (label = line number), train/<wnid>/images/*.JPEG (500 each), val/images/*.JPEG
 * labelled by val/val_annotations.txt (`file<TAB>wnid<TAB>box…`). The test split has no labels,
 * so "val" is the evaluation split, as in the papers. All images are 64×64; the whole split is
 * decoded into memory once (1.2 GB uint8 for train) and cached as one file, so later loads take
 * seconds instead of decoding 100 000 JPEGs again.
 */
export type TinySplit = 'train' | 'val';

export interface LoadTinyImageNetOptions {
  /** The extracted tiny-imagenet-200 folder (default <dataRoot>/tiny-imagenet-200). */
  dir?: string;
  /** Read/write the decoded cache (default true); the folder is $MIXMASK_CACHE or data/cache. */
  cache?: boolean;
  cacheDir?: string;
  concurrency?: number;
  /** Progress callback while decoding (done, total). */
  onProgress?: (done: number, total: number) => void;
}

const SIZE = 64;

/** Lists files and labels of a split, checking the layout; throws naming what is missing. */
export function tinyImageNetIndex(dir: string, split: TinySplit): { wnids: string[]; files: string[]; labels: Int32Array } {
  const wnidsFile = path.join(dir, 'wnids.txt');
  if (!fs.existsSync(dir)) {
    throw new Error(`Tiny-ImageNet: folder ${dir} does not exist; expected the extracted tiny-imagenet-200.zip (run \`npm run data -- tiny-imagenet\`)`);
  }
  if (!fs.existsSync(wnidsFile)) throw new Error(`Tiny-ImageNet: missing ${wnidsFile}; expected 200 WordNet ids, one per line`);
  const wnids = fs.readFileSync(wnidsFile, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter((s) => s !== '');
  if (wnids.length === 0) throw new Error(`Tiny-ImageNet: ${wnidsFile} lists no class ids`);
  const labelOf = new Map(wnids.map((w, i) => [w, i]));
  const files: string[] = [];
  const labels: number[] = [];
  if (split === 'train') {
    for (const [y, w] of wnids.entries()) {
      const imgDir = path.join(dir, 'train', w, 'images');
      if (!fs.existsSync(imgDir)) throw new Error(`Tiny-ImageNet: missing folder ${imgDir} for class ${y} (${w} in wnids.txt)`);
      const imgs = listImages(imgDir);
      if (imgs.length === 0) throw new Error(`Tiny-ImageNet: class folder ${imgDir} is empty; expected its .JPEG images`);
      for (const f of imgs) {
        files.push(f);
        labels.push(y);
      }
    }
  } else {
    const ann = path.join(dir, 'val', 'val_annotations.txt');
    if (!fs.existsSync(ann)) throw new Error(`Tiny-ImageNet: missing annotation file ${ann}; expected lines "<file>\\t<wnid>\\t<box>"`);
    const lines = fs.readFileSync(ann, 'utf8').split(/\r?\n/);
    lines.forEach((line, ln) => {
      if (line.trim() === '') return;
      const [file, wnid] = line.split('\t');
      const y = labelOf.get(wnid);
      if (y === undefined) {
        throw new Error(`Tiny-ImageNet: ${ann} line ${ln + 1}: class id "${wnid}" is not in wnids.txt (label out of range)`);
      }
      const f = path.join(dir, 'val', 'images', file);
      if (!fs.existsSync(f)) throw new Error(`Tiny-ImageNet: ${ann} line ${ln + 1} names ${f}, which does not exist`);
      files.push(f);
      labels.push(y);
    });
    if (files.length === 0) throw new Error(`Tiny-ImageNet: ${ann} lists no images`);
  }
  return { wnids, files, labels: Int32Array.from(labels) };
}

/** Loads a Tiny-ImageNet split into memory (decoding once, then from the cache file). */
export async function loadTinyImageNet(split: TinySplit, opts: LoadTinyImageNetOptions = {}): Promise<ArrayDataset> {
  const dir = opts.dir ?? path.join(dataRoot(), 'tiny-imagenet-200');
  const { wnids, files, labels } = tinyImageNetIndex(dir, split);
  const useCache = opts.cache ?? true;
  const cacheFile = path.join(opts.cacheDir ?? cacheRoot(), `tiny-imagenet-200-${split}.u8bin`);
  const make = (pixels: Uint8Array): ArrayDataset =>
    new ArrayDataset({ name: `tiny-imagenet-${split}`, pixels, labels, height: SIZE, width: SIZE, channels: 3, numClasses: wnids.length, classNames: wnids, source: dir });
  if (useCache) {
    const cached = readCache(cacheFile, labels);
    if (cached) return make(cached);
  }
  const ds = { name: `tiny-imagenet-${split}`, size: files.length, height: SIZE, width: SIZE };
  const pixels = new Uint8Array(files.length * SIZE * SIZE * 3);
  const chunk = 1000;
  const concurrency = opts.concurrency ?? 2 * (os.availableParallelism?.() ?? os.cpus().length);
  for (let s = 0; s < files.length; s += chunk) {
    const idx = Array.from({ length: Math.min(chunk, files.length - s) }, (_, k) => s + k);
    const raw = await readDecoded(ds, idx, (i) => files[i], (i) => labels[i], 'fill', concurrency);
    pixels.set(raw.pixels, s * SIZE * SIZE * 3);
    opts.onProgress?.(s + idx.length, files.length);
  }
  if (useCache) writeCache(cacheFile, labels, pixels);
  return make(pixels);
}

// Cache layout: "MMTI" | uint32 n | int32 labels[n] | uint8 pixels[n·64·64·3]. Written to a temp
// file and renamed, so an interrupted write never looks complete; labels must match the index.
const MAGIC = 0x4954_4d4d;

function readCache(file: string, labels: Int32Array): Uint8Array | null {
  if (!fs.existsSync(file)) return null;
  const n = labels.length;
  const expected = 8 + 4 * n + n * SIZE * SIZE * 3;
  if (fs.statSync(file).size !== expected) return null;
  const buf = fs.readFileSync(file);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(0, true) !== MAGIC || view.getUint32(4, true) !== n) return null;
  for (let i = 0; i < n; i++) if (view.getInt32(8 + 4 * i, true) !== labels[i]) return null;
  return new Uint8Array(buf.buffer, buf.byteOffset + 8 + 4 * n, n * SIZE * SIZE * 3);
}

function writeCache(file: string, labels: Int32Array, pixels: Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const head = Buffer.alloc(8 + 4 * labels.length);
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt32LE(labels.length, 4);
  for (let i = 0; i < labels.length; i++) head.writeInt32LE(labels[i], 8 + 4 * i);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    writeAll(fd, head);
    writeAll(fd, pixels);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function writeAll(fd: number, data: Uint8Array): void {
  // writeSync may write less than asked for large buffers.
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, Math.min(data.length - off, 1 << 28));
}
