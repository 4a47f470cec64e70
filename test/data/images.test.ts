import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharpDefault from 'sharp';
import { useBackend } from '../helpers';
import { decodeImageFile, ImageFolderDataset, imageDecoderName, loadAll, loadTinyImageNet } from '../../lib/data';

// sharp's typings are its ESM build; under CommonJS the require() value is the factory.
const sharp = ((sharpDefault as unknown as { default?: typeof sharpDefault }).default ?? sharpDefault) as typeof sharpDefault;

before(async () => {
  await useBackend('wasm');
});

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-img-'));

/** A solid-colour image whose red channel encodes the class, so labels can be checked from pixels. */
async function writeImage(file: string, r: number, size = 64, format: 'jpeg' | 'png' = 'jpeg', gray = false): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let img = sharp({ create: { width: size, height: size, channels: 3, background: { r, g: 100, b: 200 } } });
  if (gray) img = img.toColourspace('b-w');
  await (format === 'jpeg' ? img.jpeg({ quality: 100 }) : img.png()).toFile(file);
}

async function fakeTiny(root: string): Promise<void> {
  const wnids = ['n001', 'n002', 'n003'];
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, 'wnids.txt'), wnids.join('\n') + '\n');
  fs.writeFileSync(path.join(root, 'words.txt'), wnids.map((w) => `${w}\tthing`).join('\n'));
  for (const [y, w] of wnids.entries()) {
    for (let i = 0; i < 2; i++) await writeImage(path.join(root, 'train', w, 'images', `${w}_${i}.JPEG`), 40 + 80 * y, 64, 'jpeg', y === 2 && i === 1);
  }
  const ann: string[] = [];
  for (let i = 0; i < 4; i++) {
    await writeImage(path.join(root, 'val', 'images', `val_${i}.JPEG`), 40 + 80 * (i % 3));
    ann.push(`val_${i}.JPEG\t${wnids[i % 3]}\t0\t0\t63\t63`);
  }
  fs.writeFileSync(path.join(root, 'val', 'val_annotations.txt'), ann.join('\n') + '\n');
}

test('decoder: sharp is available; JPEG/PNG/grayscale decode to RGB; an unreadable image names the file', async () => {
  assert.equal(imageDecoderName(), 'sharp');
  const dir = tmp();
  await writeImage(path.join(dir, 'a.png'), 200, 10, 'png');
  const a = await decodeImageFile(path.join(dir, 'a.png'));
  assert.deepEqual([a.height, a.width, a.channels], [10, 10, 3]);
  assert.deepEqual(Array.from(a.pixels.subarray(0, 3)), [200, 100, 200]);
  await writeImage(path.join(dir, 'g.png'), 90, 12, 'png', true);
  const g = await decodeImageFile(path.join(dir, 'g.png'), { resize: { height: 6, width: 4 } });
  assert.deepEqual([g.height, g.width, g.channels], [6, 4, 3]);
  assert.equal(g.pixels[0], g.pixels[1]);
  fs.writeFileSync(path.join(dir, 'broken.JPEG'), Buffer.from('this is not a jpeg'));
  await assert.rejects(decodeImageFile(path.join(dir, 'broken.JPEG')), (e: Error) => e.message.includes(path.join(dir, 'broken.JPEG')) && /expected a readable JPEG or PNG/.test(e.message));
  // A truncated JPEG is an error too, not silently grey pixels.
  const good = fs.readFileSync(path.join(dir, 'a.png'));
  fs.writeFileSync(path.join(dir, 'cut.png'), good.subarray(0, good.length >> 1));
  await assert.rejects(decodeImageFile(path.join(dir, 'cut.png')), /cut\.png/);
  fs.rmSync(dir, { recursive: true });
});

test('Tiny-ImageNet layout: train by wnid folders, val by annotations, cache file reused', async () => {
  const dir = tmp();
  const root = path.join(dir, 'tiny-imagenet-200');
  const cacheDir = path.join(dir, 'cache');
  await fakeTiny(root);
  const train = await loadTinyImageNet('train', { dir: root, cacheDir });
  assert.equal(train.size, 6);
  assert.equal(train.numClasses, 3);
  assert.deepEqual(Array.from(train.labels), [0, 0, 1, 1, 2, 2]);
  // Red channel (JPEG at quality 100: within a few levels) identifies the class; the grayscale JPEG came out RGB.
  for (let i = 0; i < 5; i++) assert.ok(Math.abs(train.pixels[i * 64 * 64 * 3] - (40 + 80 * train.labels[i])) <= 3);
  const last = train.pixels.subarray(5 * 64 * 64 * 3, 5 * 64 * 64 * 3 + 3);
  assert.ok(last[0] === last[1] && last[1] === last[2]);
  assert.ok(fs.existsSync(path.join(cacheDir, 'tiny-imagenet-200-train.u8bin')));
  const again = await loadTinyImageNet('train', { dir: root, cacheDir });
  assert.deepEqual(again.pixels, train.pixels);
  const val = await loadTinyImageNet('val', { dir: root, cache: false });
  assert.deepEqual(Array.from(val.labels), [0, 1, 2, 0]);
  const b = await loadAll(val);
  assert.deepEqual(b.images.shape, [4, 64, 64, 3]);
  tf.dispose([b.images, b.labels]);
  fs.rmSync(dir, { recursive: true });
});

test('Tiny-ImageNet errors: missing wnids, missing class folder, empty class folder, missing annotations, unknown wnid, unreadable image', async () => {
  const dir = tmp();
  const root = path.join(dir, 'tiny-imagenet-200');
  await fakeTiny(root);
  const opts = { dir: root, cache: false };
  fs.renameSync(path.join(root, 'val', 'val_annotations.txt'), path.join(root, 'val', 'ann.bak'));
  await assert.rejects(loadTinyImageNet('val', opts), (e: Error) => /missing annotation file/.test(e.message) && e.message.includes('val_annotations.txt'));
  fs.writeFileSync(path.join(root, 'val', 'val_annotations.txt'), 'val_0.JPEG\tn999\t0\t0\t1\t1\n');
  await assert.rejects(loadTinyImageNet('val', opts), /line 1: class id "n999" is not in wnids\.txt \(label out of range\)/);
  fs.writeFileSync(path.join(root, 'val', 'val_annotations.txt'), 'gone.JPEG\tn001\t0\t0\t1\t1\n');
  await assert.rejects(loadTinyImageNet('val', opts), /gone\.JPEG, which does not exist/);

  for (const f of fs.readdirSync(path.join(root, 'train', 'n002', 'images'))) fs.rmSync(path.join(root, 'train', 'n002', 'images', f));
  await assert.rejects(loadTinyImageNet('train', opts), (e: Error) => /class folder .*n002.*images is empty/.test(e.message));
  fs.rmSync(path.join(root, 'train', 'n002'), { recursive: true });
  await assert.rejects(loadTinyImageNet('train', opts), /missing folder .*n002.*images for class 1/);
  await writeImage(path.join(root, 'train', 'n002', 'images', 'ok.JPEG'), 10);
  fs.writeFileSync(path.join(root, 'train', 'n003', 'images', 'n003_0.JPEG'), 'garbage');
  await assert.rejects(loadTinyImageNet('train', opts), (e: Error) => e.message.includes('n003_0.JPEG') && /cannot decode image/.test(e.message));
  fs.rmSync(path.join(root, 'wnids.txt'));
  await assert.rejects(loadTinyImageNet('train', opts), /missing .*wnids\.txt/);
  await assert.rejects(loadTinyImageNet('train', { dir: path.join(dir, 'absent') }), /does not exist.*npm run data -- tiny-imagenet/);
  fs.rmSync(dir, { recursive: true });
});

test('ImageFolder (ImageNet layout): sorted classes, recursive files, streamed decode with resize, clear errors', async () => {
  const dir = tmp();
  await writeImage(path.join(dir, 'zebra', 'a.jpg'), 30, 40);
  await writeImage(path.join(dir, 'zebra', 'sub', 'b.png'), 30, 50, 'png');
  await writeImage(path.join(dir, 'ant', 'c.JPEG'), 220, 30);
  fs.writeFileSync(path.join(dir, 'ant', 'notes.txt'), 'ignored');
  const ds = new ImageFolderDataset(dir, { size: 24 });
  assert.deepEqual(ds.classNames, ['ant', 'zebra']);
  assert.equal(ds.size, 3);
  assert.deepEqual([0, 1, 2].map((i) => ds.label(i)), [0, 1, 1]);
  const raw = await ds.read([2, 0]);
  assert.deepEqual([raw.n, raw.height, raw.width, raw.channels], [2, 24, 24, 3]);
  assert.deepEqual(Array.from(raw.labels), [1, 0]);
  assert.ok(Math.abs(raw.pixels[24 * 24 * 3] - 220) <= 3);

  fs.mkdirSync(path.join(dir, 'empty'));
  assert.throws(() => new ImageFolderDataset(dir, { size: 24 }), (e: Error) => e.message.includes(path.join(dir, 'empty')) && /is empty/.test(e.message));
  fs.rmdirSync(path.join(dir, 'empty'));
  assert.throws(() => new ImageFolderDataset(path.join(dir, 'nope'), { size: 24 }), /is not a folder/);
  assert.throws(() => new ImageFolderDataset(dir, { size: 24, classNames: ['ant', 'bee', 'zebra'] }), /missing class folder .*bee/);
  fs.writeFileSync(path.join(dir, 'ant', 'bad.png'), 'nope');
  const ds2 = new ImageFolderDataset(dir, { size: 24 });
  await assert.rejects(ds2.read([ds2.files.findIndex((f) => f.endsWith('bad.png'))]), (e: Error) => e.message.includes('bad.png'));
  fs.rmSync(dir, { recursive: true });
});
