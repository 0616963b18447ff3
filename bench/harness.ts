// The shared bench helper: time a function (warm-up, repeats, median), print a table, append CSV
// rows with machine info to bench/results/<bench>.csv. Ratios between rows of one run are the
// figures that count: machines are shared and noisy.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { info } from '../src/index';
import { csvWithRows } from './csv';

export interface Timing {
  medianMs: number;
  minMs: number;
  maxMs: number;
  repeats: number;
}

export interface TimeOptions {
  warmup?: number;
  repeats?: number;
  /** Stop repeating after this much time (ms), once at least 3 repeats ran. */
  budgetMs?: number;
}

/** Times `fn` (sync or async): `warmup` untimed calls, then up to `repeats` timed ones. */
export async function timeIt(fn: () => unknown, opts: TimeOptions = {}): Promise<Timing> {
  const { warmup = 2, repeats = 10, budgetMs = 5000 } = opts;
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  const start = performance.now();
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
    if (times.length >= 3 && performance.now() - start > budgetMs) break;
  }
  times.sort((a, b) => a - b);
  return {
    medianMs: times[Math.floor(times.length / 2)],
    minMs: times[0],
    maxMs: times[times.length - 1],
    repeats: times.length,
  };
}

export interface MachineInfo {
  machine: string;
  cpu: string;
  cores: number;
  torch: string;
  gpu: string;
  node: string;
}

let machineCache: MachineInfo | undefined;
export function machineInfo(): MachineInfo {
  if (machineCache) return machineCache;
  // Benches of the TypeScript data layer run without the addon: then torch and GPU are unknown.
  let torch = 'no addon';
  let gpu = 'unknown';
  try {
    const i = info();
    torch = i.torchVersion;
    gpu = i.cudaDevices.map((d) => d.name).join('+') || 'none';
  } catch {
    // addon not built or not loadable
  }
  machineCache = {
    machine: os.hostname(),
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    torch,
    gpu,
    node: process.version,
  };
  return machineCache;
}

export type Row = Record<string, string | number>;

/** Appends rows (plus timestamp and machine columns) to bench/results/<bench>.csv; new columns rewrite it. */
export function appendCsv(
  bench: string,
  rows: Row[],
  dir = path.resolve(__dirname, '..', '..', 'bench', 'results'),
): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${bench}.csv`);
  const m = machineInfo();
  const full = rows.map((r) => ({ timestamp: new Date().toISOString(), ...r, ...m }));
  // A bench whose columns changed rewrites its file under the union of the columns (bench/csv.ts).
  const { text, rewrite } = csvWithRows(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '', full);
  if (rewrite) fs.writeFileSync(file, text);
  else fs.appendFileSync(file, text);
  return file;
}

/** Prints rows as an aligned table. */
export function printTable(title: string, rows: Row[]): void {
  if (!rows.length) return;
  const cols = Object.keys(rows[0]);
  const fmt = (v: string | number | undefined): string =>
    v === undefined ? '' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v;
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => fmt(r[c]).length)));
  const line = (cells: string[]): string => cells.map((c, k) => c.padStart(widths[k])).join('  ');
  process.stdout.write(`\n${title}\n${line(cols)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(line(cols.map((c) => fmt(r[c]))) + '\n');
}

export function gbPerSecond(bytes: number, ms: number): number {
  return bytes / (ms / 1000) / 1e9;
}
