// Scalar metrics of a run, in two forms under the run folder:
//   <runDir>/metrics.jsonl       one JSON object per log call: {"step", "time", "<tag>": value, ...}
//   <runDir>/tensorboard/        TensorBoard event files (the same scalars, tag = key)
// Tags are slash-grouped ("train/loss", "eval/accuracy") so TensorBoard shows one section per group.
// A resumed run opens the logger with `resumeStep`: JSONL lines past that step (written by the run
// that died after its last checkpoint) are dropped, so the file reads as one uninterrupted run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TensorBoardWriter } from './tensorboard';
import { writeFileAtomicSync } from '../util/atomic_write';

export const METRICS_FILE = 'metrics.jsonl';
export const TENSORBOARD_DIR = 'tensorboard';

export interface MetricsOptions {
  /** Write TensorBoard event files too (default true). */
  tensorboard?: boolean;
  /** Continue a run: keep metrics.jsonl lines with step <= resumeStep, drop the rest. Absent: start
   *  the file afresh. */
  resumeStep?: number;
  /** Clock in seconds (tests). */
  now?: () => number;
}

export interface MetricsRecord {
  step: number;
  time: number;
  [tag: string]: number;
}

export class MetricsLogger {
  readonly file: string;
  private fd: number;
  private tb: TensorBoardWriter | null;
  private readonly now: () => number;

  constructor(
    readonly runDir: string,
    opts: MetricsOptions = {},
  ) {
    fs.mkdirSync(runDir, { recursive: true });
    this.file = path.join(runDir, METRICS_FILE);
    this.now = opts.now ?? (() => Date.now() / 1000);
    if (opts.resumeStep !== undefined && fs.existsSync(this.file)) {
      const keep = readMetrics(this.file, { tolerateTornTail: true }).filter(
        (r) => r.step <= (opts.resumeStep as number),
      );
      // Replaced whole: a crash here leaves the old file, never one cut in the middle.
      writeFileAtomicSync(this.file, keep.map((r) => JSON.stringify(r) + '\n').join(''));
      this.fd = fs.openSync(this.file, 'a');
    } else {
      this.fd = fs.openSync(this.file, 'w');
    }
    this.tb = opts.tensorboard === false ? null : new TensorBoardWriter(path.join(runDir, TENSORBOARD_DIR));
  }

  /** One record of scalars at `step`. Non-finite values go to TensorBoard as they are and to JSONL
   *  as null (JSON has no NaN), so a diverging run stays visible in both. */
  log(step: number, values: Record<string, number>): void {
    if (this.fd < 0) throw new Error(`metrics: ${this.file} is closed`);
    const time = this.now();
    const rec: Record<string, number | null> = { step, time };
    for (const [k, v] of Object.entries(values)) rec[k] = Number.isFinite(v) ? v : null;
    fs.writeSync(this.fd, JSON.stringify(rec) + '\n');
    this.tb?.scalars(values, step, time);
  }

  /** Everything logged so far is on disk (call at checkpoints and at the end). */
  flush(): void {
    if (this.fd >= 0) fs.fsyncSync(this.fd);
    this.tb?.flush();
  }

  close(): void {
    if (this.fd < 0) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = -1;
    this.tb?.close();
    this.tb = null;
  }
}

/** Reads a metrics.jsonl; a bad line is an error naming it (a torn last line is skipped when asked). */
export function readMetrics(file: string, opts: { tolerateTornTail?: boolean } = {}): MetricsRecord[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out: MetricsRecord[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      if (opts.tolerateTornTail && i >= lines.length - 2) return; // the last line, cut by a crash
      throw new Error(`${file}:${i + 1}: not a JSON object`);
    }
    if (typeof rec !== 'object' || rec === null || typeof (rec as MetricsRecord).step !== 'number') {
      throw new Error(`${file}:${i + 1}: a metrics record needs a numeric "step"`);
    }
    out.push(rec as MetricsRecord);
  });
  return out;
}
