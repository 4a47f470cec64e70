import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';

/**
 * JPEG/PNG decoding. First choice: `sharp` (libvips + mozjpeg, prebuilt binaries shipped in npm
 * packages): it decodes on libuv's thread pool, so decoding overlaps the tfjs work on the main
 * thread — the point of prefetching. Fallback: tfjs-node's `tf.node.decodeImage` when that
 * backend is active (optional dependency, not installed everywhere; synchronous).
 */
export interface DecodedImage {
  /** h·w·3 bytes, HWC RGB. */
  pixels: Uint8Array;
  height: number;
  width: number;
  channels: 3;
}

export interface DecodeOptions {
  /**
   * Resize to exactly height×width. 'cover' (default) scales the shorter side and centre-crops —
   * torchvision's Resize+CenterCrop; 'fill' stretches.
   */
  resize?: { height: number; width: number; fit?: 'cover' | 'fill' };
}

// sharp's typings resolve to its ESM build (`export default`) under node10 resolution; at run
// time require() returns the CommonJS export, the factory itself.
type SharpFactory = (typeof import('sharp'))['default'];
let sharpModule: SharpFactory | null | undefined;

function loadSharp(): SharpFactory | null {
  if (sharpModule === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const m = require('sharp') as unknown;
      sharpModule = (typeof m === 'function' ? m : ((m as { default?: unknown }).default ?? null)) as SharpFactory | null;
    } catch {
      sharpModule = null;
    }
  }
  return sharpModule ?? null;
}

/**
 * JPEG bytes of 8-bit pixels (row-major, 1 or 3 channels) through sharp, or null where sharp is
 * not installed. Photographs in figures are a tenth of their PNG size this way.
 */
export async function encodeJpeg(pixels: Uint8Array, width: number, height: number, channels: 1 | 3, quality = 90): Promise<Buffer | null> {
  const sharp = loadSharp();
  if (!sharp) return null;
  return sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), { raw: { width, height, channels } }).jpeg({ quality }).toBuffer();
}

interface TfNode {
  node: { decodeImage(contents: Uint8Array, channels?: number): tf.Tensor3D | tf.Tensor4D };
}

function loadTfNode(): TfNode | null {
  if (tf.getBackend() !== 'tensorflow') return null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@tensorflow/tfjs-node') as TfNode;
  } catch {
    return null;
  }
}

/** Which decoder `decodeImageFile` will use here. */
export function imageDecoderName(): 'sharp' | 'tfjs-node' | 'none' {
  if (loadSharp()) return 'sharp';
  if (loadTfNode()) return 'tfjs-node';
  return 'none';
}

/** Decodes a JPEG or PNG (any channel count; alpha dropped, grayscale → RGB) to uint8 RGB. */
export async function decodeImageFile(file: string, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const sharp = loadSharp();
  if (sharp) {
    try {
      let img = sharp(file, { failOn: 'error' });
      if (opts.resize) {
        img = img.resize(opts.resize.width, opts.resize.height, { fit: opts.resize.fit === 'fill' ? 'fill' : 'cover', position: 'centre' });
      }
      const { data, info } = await img.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
      return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), height: info.height, width: info.width, channels: 3 };
    } catch (e) {
      throw new Error(`cannot decode image ${file}: ${(e as Error).message}; expected a readable JPEG or PNG file`);
    }
  }
  const tfn = loadTfNode();
  if (tfn) {
    let bytes: Uint8Array;
    try {
      bytes = fs.readFileSync(file);
    } catch (e) {
      throw new Error(`cannot read image ${file}: ${(e as Error).message}`);
    }
    let pixels: Uint8Array;
    let height: number;
    let width: number;
    try {
      const t = tf.tidy(() => {
        let x = tfn.node.decodeImage(bytes, 3) as tf.Tensor3D;
        if (opts.resize) x = resizeCover(x, opts.resize.height, opts.resize.width, opts.resize.fit ?? 'cover');
        return tf.cast(tf.clipByValue(tf.round(x), 0, 255), 'int32');
      });
      [height, width] = t.shape as [number, number, number];
      try {
        pixels = Uint8Array.from(await t.data());
      } finally {
        t.dispose();
      }
    } catch (e) {
      throw new Error(`cannot decode image ${file}: ${(e as Error).message}; expected a readable JPEG or PNG file`);
    }
    return { pixels, height, width, channels: 3 };
  }
  throw new Error(
    `cannot decode image ${file}: no image decoder available; install the npm package sharp (a dependency of this project) ` +
      `or activate the tfjs-node backend`,
  );
}

/** Where Debian's `python3-skimage` installs scikit-image's sample photographs (e.g. chelsea.png, coffee.png, both CC0). */
export const SKIMAGE_DATA_DIR = '/usr/lib/python3/dist-packages/skimage/data';

/** The file of one scikit-image sample photograph, e.g. `skimagePhoto('chelsea')`; a clear error when it is not installed. */
export function skimagePhoto(name: string, dir: string = SKIMAGE_DATA_DIR): string {
  const file = `${dir}/${name}.png`;
  if (!fs.existsSync(file)) {
    throw new Error(`sample photograph ${file} not found: install the Debian package python3-skimage (scikit-image's sample data), or pass another directory`);
  }
  return file;
}

/**
 * Image files decoded, centre-cropped to a square and resized to size×size (decodeImageFile's
 * 'cover'), stacked into one [n, size, size, 3] float tensor with values in [0, 1].
 */
export async function loadImageBatch(files: readonly string[], size: number): Promise<tf.Tensor4D> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`loadImageBatch: size must be a positive integer, got ${size}`);
  if (files.length === 0) throw new Error('loadImageBatch: no files given');
  const per = size * size * 3;
  const values = new Float32Array(files.length * per);
  const decoded = await Promise.all(files.map((f) => decodeImageFile(f, { resize: { height: size, width: size } })));
  decoded.forEach((img, i) => {
    for (let k = 0; k < per; k++) values[i * per + k] = img.pixels[k] / 255;
  });
  return tf.tensor4d(values, [files.length, size, size, 3]);
}

function resizeCover(x: tf.Tensor3D, h: number, w: number, fit: 'cover' | 'fill'): tf.Tensor3D {
  if (fit === 'fill') return tf.image.resizeBilinear(x, [h, w], false, true);
  const [ih, iw] = x.shape;
  const s = Math.max(h / ih, w / iw);
  const rh = Math.max(h, Math.round(ih * s));
  const rw = Math.max(w, Math.round(iw * s));
  const r = tf.image.resizeBilinear(x, [rh, rw], false, true);
  const top = Math.floor((rh - h) / 2);
  const left = Math.floor((rw - w) / 2);
  return tf.slice(r, [top, left, 0], [h, w, 3]);
}
