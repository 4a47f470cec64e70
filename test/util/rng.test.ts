import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Rng } from '../../lib/util/rng';

test('the same seed gives the same stream, different seeds differ', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const sa = Array.from({ length: 10 }, () => a.nextUint32());
  assert.deepEqual(sa, Array.from({ length: 10 }, () => b.nextUint32()));
  assert.notDeepEqual(sa, Array.from({ length: 10 }, () => c.nextUint32()));
});

test('state round-trips exactly (checkpoint and resume)', () => {
  const a = new Rng(7);
  for (let i = 0; i < 100; i++) a.next();
  const resumed = new Rng(a.getState());
  assert.deepEqual(Array.from({ length: 5 }, () => a.next()), Array.from({ length: 5 }, () => resumed.next()));
  assert.throws(() => new Rng([0, 0, 0, 0]), /all zero/);
  assert.throws(() => new Rng([1, 2, 3] as unknown as [number, number, number, number]), /four uint32 words/);
});

test('distributions have the right moments', () => {
  const r = new Rng(1);
  const n = 20000;
  const mean = (f: () => number) => Array.from({ length: n }, f).reduce((s, v) => s + v, 0) / n;
  assert.ok(Math.abs(mean(() => r.next()) - 0.5) < 0.01);
  assert.ok(Math.abs(mean(() => r.normal())) < 0.03);
  assert.ok(Math.abs(mean(() => r.normal() ** 2) - 1) < 0.05);
  assert.ok(Math.abs(mean(() => r.beta(1, 1)) - 0.5) < 0.01);
  assert.ok(Math.abs(mean(() => r.beta(2, 5)) - 2 / 7) < 0.01);
  const ints = Array.from({ length: n }, () => r.int(6));
  assert.ok(ints.every((v) => Number.isInteger(v) && v >= 0 && v < 6));
});

test('permutation is a permutation', () => {
  const p = Array.from(new Rng(3).permutation(50));
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
  assert.notDeepEqual(p, Array.from({ length: 50 }, (_, i) => i));
});
