import { spawnSync } from 'node:child_process';

/**
 * Loads Dawn's Node binding (`dawn.node` of the npm package `webgpu`) in a child process,
 * asks it for an adapter and runs one write → copy → read round trip on a device, so that a
 * missing Vulkan loader, a driver that aborts or a device that never answers is reported as
 * a reason instead of taking the caller's process down.
 */

/** What the adapter says about itself (GPUAdapterInfo) and what we conclude from it. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (llvmpipe/lavapipe, SwiftShader): correct but far slower than the CPU backends. */
  software: boolean;
}

export type ProbeResult = { ok: true; adapter: AdapterSummary } | { ok: false; reason: string };

export interface ProbeOptions {
  /** Flags for Dawn's create() (e.g. 'backend=opengles'). */
  flags: string[];
  /** GPURequestAdapterOptions given to requestAdapter. */
  request: Record<string, unknown>;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

// Printed before the JSON result, so that whatever the driver writes to stdout cannot be mistaken for it.
const MARK = '@@mixmask-webgpu-probe@@';

const PROBE_SCRIPT = `
const [dawnPath, flagsJson, requestJson, mark] = process.argv.slice(1);
const done = (o) => { process.stdout.write('\\n' + mark + JSON.stringify(o) + '\\n'); process.exit(0); };
(async () => {
  const { create, globals } = require(dawnPath);
  const gpu = create(JSON.parse(flagsJson));
  const adapter = await gpu.requestAdapter(JSON.parse(requestJson));
  if (!adapter) return done({ ok: false, error: 'no-adapter' });
  const i = adapter.info || {};
  const info = { vendor: i.vendor || '', architecture: i.architecture || '', device: i.device || '', description: i.description || '', isFallbackAdapter: !!i.isFallbackAdapter };
  const device = await adapter.requestDevice();
  const U = globals.GPUBufferUsage;
  const src = device.createBuffer({ size: 16, usage: U.COPY_SRC | U.COPY_DST });
  const dst = device.createBuffer({ size: 16, usage: U.COPY_DST | U.MAP_READ });
  device.queue.writeBuffer(src, 0, new Float32Array([1, 2, 3, 4]));
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, dst, 0, 16);
  device.queue.submit([enc.finish()]);
  await dst.mapAsync(globals.GPUMapMode.READ);
  const got = Array.from(new Float32Array(dst.getMappedRange().slice(0)));
  if (got.join() !== '1,2,3,4') return done({ ok: false, error: 'a buffer round trip returned ' + got.join() });
  done({ ok: true, info });
})().catch((e) => done({ ok: false, error: String((e && e.message) || e) }));
`;

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|softpipe/i;

export function summariseAdapter(info: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean }): AdapterSummary {
  const s = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
  };
  const software = !!info.isFallbackAdapter || s.architecture === 'software' || SOFTWARE.test(`${s.device} ${s.description}`);
  return { ...s, software };
}

/** One line naming the adapter, e.g. "NVIDIA H100 80GB HBM3 — vendor nvidia, hopper, hardware". */
export function describeAdapter(a: AdapterSummary): string {
  const name = a.description || a.device || 'unnamed adapter';
  const facts = [a.vendor && `vendor ${a.vendor}`, a.architecture !== 'software' && a.architecture, a.software ? 'software adapter' : 'hardware'];
  return `${name} — ${facts.filter(Boolean).join(', ')}`;
}

/** Turns Dawn's stderr and the probe's error into a reason a user can act on. */
export function classifyDawnFailure(error: string, stderr: string): string {
  const text = `${error}\n${stderr}`;
  if (/libvulkan\.so(\.1)?: cannot open shared object file/.test(text)) {
    return 'no Vulkan loader (libvulkan.so.1 not found; on Debian/Ubuntu: apt-get install libvulkan1)';
  }
  if (error === 'no-adapter') {
    if (/Found no drivers|VK_ERROR_INCOMPATIBLE_DRIVER/.test(text)) {
      return 'no Vulkan driver (no GPU driver found; for a software adapter, Mesa ≥ 23 mesa-vulkan-drivers)';
    }
    const hint = stderr.split('\n').map((l) => l.trim()).find((l) => /^(Warning|Error):/.test(l));
    return `Dawn found no WebGPU adapter${hint ? ` (${hint.slice(0, 200)})` : ''}`;
  }
  if (/GLIBCXX_|GLIBC_/.test(text)) {
    const m = /(GLIBC(?:XX)?_[\d.]+)/.exec(text);
    return `dawn.node cannot load: the system C++ runtime is too old${m ? ` (${m[1]} not found)` : ''}`;
  }
  const first = error.split('\n')[0];
  return `Dawn failed: ${first.length > 200 ? `${first.slice(0, 200)}…` : first}`;
}

export function probeDawn(dawnNodePath: string, opts: ProbeOptions): ProbeResult {
  const res = spawnSync(process.execPath, ['-e', PROBE_SCRIPT, dawnNodePath, JSON.stringify(opts.flags), JSON.stringify(opts.request), MARK], {
    encoding: 'utf8',
    // Software adapters compile their pipelines on the CPU; a GPU answers in well under a second.
    timeout: opts.timeoutMs ?? 60_000,
    env: opts.env ?? process.env,
  });
  const stderr = res.stderr ?? '';
  if (res.error) return { ok: false, reason: `probe failed to run: ${res.error.message}` };
  if (res.signal) return { ok: false, reason: `Dawn crashed while starting (${res.signal})` };
  const line = (res.stdout ?? '').split('\n').find((l) => l.startsWith(MARK));
  if (!line) {
    const tail = stderr.trim().split('\n').slice(-1)[0] ?? '';
    return { ok: false, reason: classifyDawnFailure(`exited with code ${res.status}${tail ? `: ${tail}` : ''}`, stderr) };
  }
  const parsed = JSON.parse(line.slice(MARK.length)) as { ok: boolean; error?: string; info?: Parameters<typeof summariseAdapter>[0] };
  if (!parsed.ok) return { ok: false, reason: classifyDawnFailure(parsed.error ?? 'unknown error', stderr) };
  return { ok: true, adapter: summariseAdapter(parsed.info ?? {}) };
}
