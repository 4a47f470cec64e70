import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeSafetensors, encodeSafetensors, readSafetensorsFile, SafeTensor, writeSafetensorsFile } from '../../lib/io/safetensors';

const tensors = new Map<string, SafeTensor>([
  ['a.weight', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6.5]) }],
  ['b.count', { dtype: 'I64', shape: [], data: BigInt64Array.from([7n]) }],
  ['c', { dtype: 'I32', shape: [3], data: Int32Array.from([-1, 0, 1]) }],
]);

test('round trip with metadata; header follows the format (u64 length, JSON, aligned data)', () => {
  const buf = encodeSafetensors(tensors, { format: 'x' });
  const headerLength = Number(buf.readBigUInt64LE(0));
  assert.equal(headerLength % 8, 0);
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString());
  assert.deepEqual(header['a.weight'], { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
  assert.deepEqual(header.__metadata__, { format: 'x' });
  const back = decodeSafetensors(buf);
  assert.deepEqual(back.metadata, { format: 'x' });
  for (const [k, t] of tensors) {
    assert.deepEqual(back.tensors.get(k)!.shape, t.shape);
    assert.deepEqual(Array.from(back.tensors.get(k)!.data as ArrayLike<number | bigint>), Array.from(t.data as ArrayLike<number | bigint>));
  }
});

test('files are written atomically and bad files are named in errors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-st-'));
  const file = path.join(dir, 'x.safetensors');
  writeSafetensorsFile(file, tensors);
  assert.deepEqual(fs.readdirSync(dir), ['x.safetensors']);
  assert.equal(readSafetensorsFile(file).tensors.size, 3);
  const full = fs.readFileSync(file);
  fs.writeFileSync(file, full.subarray(0, full.length - 4));
  assert.throws(() => readSafetensorsFile(file), new RegExp(`${file.replace(/\./g, '\\.')}: tensor "c" spans bytes`));
  fs.writeFileSync(file, Buffer.from([1, 2, 3]));
  assert.throws(() => readSafetensorsFile(file), /not a safetensors file \(3 bytes/);
  assert.throws(() => readSafetensorsFile(path.join(dir, 'none')), /no such file/);
  assert.throws(
    () => encodeSafetensors(new Map([['bad', { dtype: 'F32', shape: [4], data: new Float32Array(3) }]])),
    /tensor "bad" has 3 values, its shape \[4\] needs 4/,
  );
});
