// Data files as the training and evaluation commands take them: a record file of samples or any
// importable JSON/JSONL, relative image paths resolved against --image-root (default: the data
// file's folder, where `medgr2 data synth` puts images/), optionally narrowed to tasks / modalities.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Sample } from '../data/proto';
import { loadSampleFile } from '../data/sample_files';

export interface SampleDataOptions {
  /** The flag that named the file, for messages ("--data"). */
  flag: string;
  imageRoot?: string;
  /** Comma-separated task names to keep (as normalized by the importers, or as written in the file). */
  task?: string;
  modality?: string;
  /** Keep the first N after filtering (0: all). */
  limit?: number;
}

function list(s: string | undefined): string[] {
  return (s ?? '')
    .split(',')
    .map((x) => x.trim().toLowerCase())
    .filter(Boolean);
}

export function loadSampleData(file: string, opts: SampleDataOptions): Sample[] {
  if (fs.existsSync(file) && fs.statSync(file).isDirectory())
    throw new Error(`${opts.flag} ${file}: a folder, not a data file`);
  let samples: Sample[];
  try {
    samples = loadSampleFile(file, { onWarning: (m) => process.stderr.write(`medgr2: warning: ${m}\n`) });
  } catch (e) {
    throw new Error(`${opts.flag}: ${(e as Error).message}`);
  }
  const root = opts.imageRoot ?? path.dirname(path.resolve(file));
  const tasks = list(opts.task);
  const mods = list(opts.modality);
  const keep = samples.filter(
    (s) =>
      (tasks.length === 0 || tasks.includes(s.task.toLowerCase()) || tasks.includes(s.taskOriginal.toLowerCase())) &&
      (mods.length === 0 || mods.includes(s.modality.toLowerCase()) || mods.includes(s.modalityOriginal.toLowerCase())),
  );
  if (keep.length === 0) {
    const what = [opts.task && `task ${opts.task}`, opts.modality && `modality ${opts.modality}`]
      .filter(Boolean)
      .join(' and ');
    throw new Error(`${opts.flag} ${file}: no samples${what ? ` of ${what}` : ''} (of ${samples.length})`);
  }
  const out = opts.limit ? keep.slice(0, opts.limit) : keep;
  return out.map((s) => ({ ...s, images: s.images.map((p) => (path.isAbsolute(p) ? p : path.join(root, p))) }));
}

/** SFT needs labels: every sample must have its answer among its options. */
export function requireLabels(samples: readonly Sample[], file: string, flag: string): void {
  const bad = samples.findIndex((s) => !s.answer || !s.options.includes(s.answer));
  if (bad >= 0) {
    const s = samples[bad];
    throw new Error(
      `${flag} ${file}: sample '${s.id}' has ${s.answer ? `answer "${s.answer}" not among its options` : 'no answer'} (training needs labelled samples)`,
    );
  }
}
