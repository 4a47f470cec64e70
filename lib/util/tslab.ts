/**
 * The tslab kernel's display channel, found among the loaded modules when this code runs inside
 * a tslab notebook cell; null elsewhere (scripts, tests).
 */
export type DisplayFn = (msg: { data: Record<string, string>; metadata: object; transient: object }, update: boolean) => void;

export function tslabDisplay(): DisplayFn | null {
  const key = Object.keys(require.cache).find((k) => /[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(k));
  if (!key) return null;
  const jupyter = require.cache[key]?.exports as { lastWriteDisplayData?: DisplayFn | null } | undefined;
  return jupyter?.lastWriteDisplayData ?? null;
}

/** Whether we run inside a tslab notebook cell. */
export function inNotebook(): boolean {
  return tslabDisplay() !== null;
}
