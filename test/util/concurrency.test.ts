import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mapLimit } from '../../lib/util/concurrency';

test('mapLimit keeps results in order and never has more than `limit` calls in flight', async () => {
  let inFlight = 0;
  let most = 0;
  const delays = [30, 5, 20, 1, 10, 2, 15];
  const out = await mapLimit(delays, 3, async (ms, i) => {
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise((r) => setTimeout(r, ms));
    inFlight--;
    return i * 10;
  });
  assert.deepEqual(out, [0, 10, 20, 30, 40, 50, 60]);
  assert.equal(most, 3);
  assert.deepEqual(await mapLimit([], 2, async () => 1), []);
  await assert.rejects(mapLimit([1], 0, async (x) => x), /limit must be an integer ≥ 1, got 0/);
});
