import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mean, meanInterval, regularizedBeta, sampleSd, studentTCdf, studentTQuantile } from '../../lib/util/stats';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a}, expected ${b} ± ${tol}`);

test('mean and sample standard deviation (n − 1) against hand-computed values', () => {
  assert.equal(mean([1, 2, 3, 4]), 2.5);
  close(sampleSd([2, 4, 4, 4, 5, 5, 7, 9])!, Math.sqrt(32 / 7), 1e-12, 'sd');
  assert.equal(sampleSd([3]), null);
  assert.throws(() => mean([]), /mean of no values/);
});

test('Student t quantiles for any degrees of freedom match published tables', () => {
  // t_{0.975, df} (two-sided 95 %), and two other levels.
  const table: Array<[number, number, number]> = [
    [0.975, 1, 12.706204736], [0.975, 2, 4.302652730], [0.975, 3, 3.182446305], [0.975, 4, 2.776445105],
    [0.975, 9, 2.262157163], [0.975, 29, 2.045229642], [0.975, 120, 1.979930405], [0.95, 2, 2.919985580], [0.995, 5, 4.032142984],
  ];
  for (const [p, df, t] of table) close(studentTQuantile(p, df), t, 1e-7, `t(${p}, ${df})`);
  close(studentTQuantile(0.025, 2), -4.302652730, 1e-7, 'lower tail');
  close(studentTCdf(0, 7), 0.5, 1e-15, 'cdf(0)');
  // df = 1 is Cauchy: P(T ≤ 1) = 3/4.
  close(studentTCdf(1, 1), 0.75, 1e-12, 'Cauchy cdf');
  close(regularizedBeta(0.3, 2, 3), 0.3483, 1e-12, 'I_0.3(2, 3)');
  assert.throws(() => studentTQuantile(1, 3), /p must be in \(0, 1\), got 1/);
  assert.throws(() => studentTQuantile(0.9, 0), /degrees of freedom must be > 0, got 0/);
});

test('the 95 % interval of a mean: half-width t·sd/√n, and whether it excludes zero', () => {
  // Differences +1, +2, +3: mean 2, sd 1, half-width 4.302653 / √3 = 2.484138.
  const a = meanInterval([1, 2, 3]);
  assert.equal(a.n, 3);
  close(a.mean, 2, 1e-12, 'mean');
  close(a.sd!, 1, 1e-12, 'sd');
  close(a.low!, 2 - 2.484138, 1e-6, 'low');
  close(a.high!, 2 + 2.484138, 1e-6, 'high');
  assert.equal(a.excludesZero, false);
  const b = meanInterval([1.5, 1.7, 1.6]);
  assert.ok(b.low! > 0 && b.excludesZero);
  const c = meanInterval([-1.5, -1.7, -1.6]);
  assert.ok(c.high! < 0 && c.excludesZero);
  const one = meanInterval([1.2]);
  assert.deepEqual([one.sd, one.low, one.high, one.excludesZero], [null, null, null, false]);
});
