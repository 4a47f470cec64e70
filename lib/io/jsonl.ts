import * as fs from 'node:fs';

/**
 * The objects of a JSON-lines file, one per non-empty line ([] when the file does not exist). A
 * torn last line (a process killed mid-write) is skipped; any other line that is not JSON is an
 * error naming the file and the line.
 */
export function readJsonl<T = unknown>(file: string): T[] {
  if (!fs.existsSync(file)) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out: T[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      if (lines.slice(i + 1).some((l) => l.trim() !== '')) throw new Error(`${file}: line ${i + 1} is not valid JSON`);
    }
  });
  return out;
}

/** Appends one object as a line. */
export function appendJsonl(file: string, record: unknown): void {
  fs.appendFileSync(file, JSON.stringify(record) + '\n');
}
