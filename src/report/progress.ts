// Progress of long work (training steps, generation batches, image loading). On a terminal: one
// rewritten line with a bar, the rate and the ETA. Elsewhere (CI logs, `| tee`, a file): plain lines,
// at most one every `intervalMs` (default 5 s) plus the first and the last, so logs stay readable.
import type { Writable } from 'node:stream';

export interface ProgressOptions {
  /** What is counted, first on the line ("sft", "eval"). */
  label: string;
  /** Units of work in all; 0 or absent: unknown (no bar, no ETA). */
  total?: number;
  /** Unit of the rate ("step", "batch"); default "it". */
  unit?: string;
  /** Default process.stderr. */
  stream?: Writable & { isTTY?: boolean; columns?: number };
  /** Force the mode; default: the stream's isTTY. */
  tty?: boolean;
  /** Plain mode: least time between two lines (default 5000 ms). */
  intervalMs?: number;
  /** Position work starts from (a resumed run), so the rate counts only this run's work. */
  start?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

export type ProgressInfo = Record<string, string | number>;

/** "1:05:09", "3:07", "0:04". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

function formatInfo(info: ProgressInfo | undefined): string {
  if (!info) return '';
  const parts = Object.entries(info).map(([k, v]) => `${k}=${typeof v === 'number' ? formatNumber(v) : v}`);
  return parts.length ? ' ' + parts.join(' ') : '';
}

/** Four significant digits, exponent form for very small or large values. */
export function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(Number(v.toPrecision(4)));
}

export class Progress {
  readonly tty: boolean;
  private readonly stream: Writable & { isTTY?: boolean; columns?: number };
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly startTime: number;
  private readonly startCount: number;
  private lastPrint = -Infinity;
  private lastPrinted = '';
  private printedAny = false;
  private finished = false;
  private count: number;
  private info: ProgressInfo | undefined;

  constructor(private readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? Boolean(this.stream.isTTY);
    this.now = opts.now ?? Date.now;
    this.intervalMs = opts.intervalMs ?? (this.tty ? 100 : 5000);
    this.startTime = this.now();
    this.startCount = this.count = opts.start ?? 0;
  }

  /** Sets the position to `done` (absolute) and maybe prints. */
  update(done: number, info?: ProgressInfo): void {
    this.count = done;
    if (info) this.info = info;
    const t = this.now();
    const total = this.opts.total ?? 0;
    const last = total > 0 && done >= total;
    if (!this.printedAny || last || t - this.lastPrint >= this.intervalMs) this.print(t);
  }

  tick(n = 1, info?: ProgressInfo): void {
    this.update(this.count + n, info);
  }

  /** Prints the final state (always) and ends the line on a terminal. */
  done(info?: ProgressInfo): void {
    if (this.finished) return;
    if (info) this.info = info;
    // A plain log that already shows the final position and values gets no repeated line.
    const same = `${this.count}${formatInfo(this.info)}` === this.lastPrinted;
    if (this.tty || !same) this.print(this.now());
    if (this.tty) this.stream.write('\n');
    this.finished = true;
  }

  /** The line as it would be printed now (without terminal control characters). */
  line(t = this.now()): string {
    const { label, unit = 'it' } = this.opts;
    const total = this.opts.total ?? 0;
    const elapsed = (t - this.startTime) / 1000;
    const doneHere = this.count - this.startCount;
    const rate = elapsed > 0 ? doneHere / elapsed : 0;
    const rateText = rate >= 1 || rate === 0 ? `${rate.toFixed(2)} ${unit}/s` : `${(1 / rate).toFixed(2)} s/${unit}`;
    let head: string;
    if (total > 0) {
      const frac = Math.min(1, this.count / total);
      const eta = rate > 0 ? (total - this.count) / rate : NaN;
      const pct = `${(100 * frac).toFixed(0).padStart(3)}%`;
      const bar = this.tty ? ` [${'#'.repeat(Math.round(frac * 20)).padEnd(20, '.')}]` : '';
      head = `${label}${bar} ${this.count}/${total} ${pct} ${rateText} elapsed ${formatDuration(elapsed)} ETA ${formatDuration(eta)}`;
    } else {
      head = `${label} ${this.count} ${rateText} elapsed ${formatDuration(elapsed)}`;
    }
    return head + formatInfo(this.info);
  }

  private print(t: number): void {
    let text = this.line(t);
    if (this.tty) {
      const cols = this.stream.columns ?? 0;
      if (cols > 1 && text.length > cols - 1) text = text.slice(0, cols - 1);
      this.stream.write(`\r${text}\x1b[K`);
    } else {
      this.stream.write(text + '\n');
    }
    this.lastPrint = t;
    this.lastPrinted = `${this.count}${formatInfo(this.info)}`;
    this.printedAny = true;
  }
}
