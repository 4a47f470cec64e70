import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { appendJsonl, readJsonl } from '../../lib/io/jsonl';

test('readJsonl: records in order, a torn last line skipped, a bad line before others named, a missing file empty', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-jsonl-'));
  const file = path.join(dir, 'log.jsonl');
  assert.deepEqual(readJsonl(file), []);
  appendJsonl(file, { a: 1 });
  appendJsonl(file, { a: 2 });
  fs.appendFileSync(file, '{"a": 3, "b"');
  assert.deepEqual(readJsonl(file), [{ a: 1 }, { a: 2 }]);
  fs.appendFileSync(file, '\n\n{"a": 4}\n');
  assert.throws(() => readJsonl(file), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: line 3 is not valid JSON`));
  fs.rmSync(dir, { recursive: true });
});
