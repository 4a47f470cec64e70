import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';

/**
 * The library's layers, lowest first. A file may import files of its own layer or of a lower one,
 * never of a higher one, and no files (nor layer groups) may import each other in a cycle:
 *
 *   0  util, io                     the seedable random source, numeric helpers, safetensors, atomic writes
 *   1  backend/*.ts but index.ts    what the backends share (types.ts, kernel contracts, the native probe)
 *   2  backend/{onednn,wasm,webgpu} the kernels and candidates of each backend
 *   3  backend/index.ts             choosing and starting a backend
 *   4  models, optim                modules, backbones and heads; optimisers, schedules, EMA
 *   5  data, masks, losses, frameworks
 *   6  train, eval, interop         the trainer, evaluators, weights to and from PyTorch
 *   7  presets, experiments         the paper's tables and profiles; a run as the command line starts it
 *   8  plot                         figures and tables
 *   9  notebook.ts                  helpers for the notebooks' first cells
 *  10  index.ts                     everything public, in one import
 *
 * Interop sits with train and eval: it reads checkpoints (train) and nothing above.
 */
const LAYERS: ReadonlyArray<readonly string[]> = [
  ['util', 'io'],
  ['backend'],
  ['backend/onednn', 'backend/wasm', 'backend/webgpu'],
  ['backend/index.ts'],
  ['models', 'optim'],
  ['data', 'masks', 'losses', 'frameworks'],
  ['train', 'eval', 'interop'],
  ['presets', 'experiments'],
  ['plot'],
  ['notebook.ts'],
  ['index.ts'],
];

const ROOT = path.resolve(__dirname, '..', '..');
const LIB = path.join(ROOT, 'lib');

/** The layer group of a file (path relative to lib/, '/'-separated): the longest entry of LAYERS it falls under. */
function groupOf(rel: string): { group: string; layer: number } {
  let best: { group: string; layer: number } | null = null;
  LAYERS.forEach((groups, layer) => {
    for (const g of groups) {
      const hit = g.endsWith('.ts') ? rel === g : rel.startsWith(`${g}/`);
      if (hit && (!best || g.length > best.group.length)) best = { group: g, layer };
    }
  });
  if (!best) throw new Error(`lib/${rel} is in no layer: add its folder to LAYERS in test/architecture.test.ts`);
  return best;
}

function listTs(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return listTs(p);
    return e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The lib/ file a relative specifier names ('./x' → x.ts or x/index.ts), relative to lib/. */
function resolve(from: string, spec: string): string {
  const base = path.resolve(path.dirname(path.join(LIB, from)), spec);
  for (const candidate of [`${base}.ts`, path.join(base, 'index.ts'), base]) {
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return path.relative(LIB, candidate).split(path.sep).join('/');
  }
  throw new Error(`lib/${from} imports '${spec}', which is no file under lib/`);
}

/** Every module a file names: import (type) / export … from / import x = require() / require() / import() / import('x') types. */
function moduleSpecifiers(file: string): string[] {
  const src = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  const literal = (n: ts.Node | undefined): void => {
    if (n && ts.isStringLiteralLike(n)) out.push(n.text);
  };
  const visit = (n: ts.Node): void => {
    if (ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) literal(n.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference)) literal(n.moduleReference.expression);
    else if (ts.isCallExpression(n) && (n.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(n.expression) && n.expression.text === 'require'))) literal(n.arguments[0]);
    else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) literal(n.argument.literal);
    ts.forEachChild(n, visit);
  };
  visit(src);
  return out;
}

/** Every relative import of every file under lib/: `import`, `import type`, `export … from`, `require`, `import()`. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of listTs(LIB)) {
    const rel = path.relative(LIB, file).split(path.sep).join('/');
    const targets = moduleSpecifiers(file).filter((s) => s.startsWith('.'));
    graph.set(rel, [...new Set(targets.map((s) => resolve(rel, s)))].sort());
  }
  return graph;
}

/** Cycles of a directed graph, one per strongly connected component with more than one node or a self-edge. */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)?.has(v)) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

/** One path around a strongly connected component, for the message: a → b → … → a. */
function loopThrough(graph: Map<string, Set<string>>, scc: string[]): string {
  const inside = new Set(scc);
  const start = scc[0];
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const pathBack = [start];
        for (let u = v; u !== start; u = prev.get(u)!) pathBack.unshift(u);
        pathBack.unshift(start);
        return pathBack.join(' → ');
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return scc.join(', ');
}

const graph = importGraph();

test('every file under lib/ belongs to a layer', () => {
  for (const file of graph.keys()) assert.doesNotThrow(() => groupOf(file), `lib/${file}`);
  assert.ok(graph.size > 50, `found only ${graph.size} files under ${LIB}`);
});

test('no file imports from a higher layer', () => {
  const upward: string[] = [];
  for (const [from, targets] of graph) {
    const a = groupOf(from);
    for (const to of targets) {
      const b = groupOf(to);
      if (b.layer > a.layer) upward.push(`lib/${from} (${a.group}, layer ${a.layer}) imports lib/${to} (${b.group}, layer ${b.layer})`);
    }
  }
  assert.deepEqual(upward, [], `imports that point upward:\n  ${upward.join('\n  ')}`);
});

test('no import cycle between files', () => {
  const g = new Map([...graph].map(([k, v]) => [k, new Set(v)]));
  const found = cycles(g).map((scc) => `${scc.map((f) => `lib/${f}`).join(', ')} import each other, e.g. ${loopThrough(g, scc)}`);
  assert.deepEqual(found, [], `import cycles:\n  ${found.join('\n  ')}`);
});

test('no import cycle between layer groups (folders)', () => {
  const g = new Map<string, Set<string>>();
  const witness = new Map<string, string>();
  for (const [from, targets] of graph) {
    const a = groupOf(from).group;
    if (!g.has(a)) g.set(a, new Set());
    for (const to of targets) {
      const b = groupOf(to).group;
      if (a === b) continue;
      g.get(a)!.add(b);
      if (!witness.has(`${a}>${b}`)) witness.set(`${a}>${b}`, `lib/${from} → lib/${to}`);
    }
  }
  const found = cycles(g).map((scc) => {
    const loop = loopThrough(g, scc).split(' → ');
    const edges = loop.slice(1).map((b, i) => witness.get(`${loop[i]}>${b}`));
    return `${scc.join(', ')} import each other, e.g. ${loop.join(' → ')} (${edges.join('; ')})`;
  });
  assert.deepEqual(found, [], `cycles between layer groups:\n  ${found.join('\n  ')}`);
});

test('lib/index.ts reaches every part of the library, so that a notebook imports one thing', () => {
  const parts = fs.readdirSync(LIB, { withFileTypes: true })
    .filter((e) => (e.isDirectory() || e.name.endsWith('.ts')) && e.name !== 'index.ts')
    .map((e) => e.name.replace(/\.ts$/, ''));
  const reached = new Set((graph.get('index.ts') ?? []).map((f) => f.split('/')[0].replace(/\.ts$/, '')));
  const missing = parts.filter((p) => !reached.has(p));
  assert.deepEqual(missing, [], `lib/index.ts exports nothing from: ${missing.map((p) => `lib/${p}`).join(', ')}`);
});

test('the cycle finder finds a cycle, the layer check sees an upward import, the parser sees every form of import', () => {
  const g = new Map([
    ['a', new Set(['b'])],
    ['b', new Set(['c'])],
    ['c', new Set(['a'])],
    ['d', new Set(['a'])],
  ]);
  assert.deepEqual(cycles(g), [['a', 'b', 'c']]);
  assert.equal(loopThrough(g, ['a', 'b', 'c']), 'a → b → c → a');
  assert.ok(groupOf('train/trainer.ts').layer < groupOf('plot/display.ts').layer);
  assert.ok(groupOf('backend/wasm/index.ts').layer < groupOf('backend/index.ts').layer);
  assert.ok(groupOf('backend/types.ts').layer < groupOf('backend/wasm/index.ts').layer);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-arch-'));
  const f = path.join(tmp, 'x.ts');
  fs.writeFileSync(f, [
    "import type { A } from './a';", "import './b';", "export * as c from './c';", "export { d } from './d';",
    "const e = require('./e');", "type F = typeof import('./f');", "import g = require('./g');", "void import('./h');", "// import './comment';",
  ].join('\n'));
  assert.deepEqual(moduleSpecifiers(f), ['./a', './b', './c', './d', './e', './f', './g', './h']);
  fs.rmSync(tmp, { recursive: true });
});
