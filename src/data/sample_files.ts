// Files of samples in either of medgr2's forms: a record file of medgr2.Sample (the default) or the
// canonical JSONL (a name ending .jsonl). Reading also accepts any importable format.
import * as fs from 'node:fs';
import { importFiles } from './import';
import type { ImportFormat } from './importers/types';
import type { Sample } from './proto';
import { readSamples, writeSamples } from './record_files';
import { looksLikeRecordFile } from './records';
import { sampleToJson } from './sample_json';
import { writeViaTempSync } from '../util/atomic_write';

export function isJsonlPath(file: string): boolean {
  return /\.jsonl$/i.test(file);
}

/** Writes samples atomically: canonical JSONL for `*.jsonl`, a record file otherwise. */
export function writeSampleFile(file: string, samples: readonly Sample[]): void {
  if (!isJsonlPath(file)) {
    writeSamples(file, samples);
    return;
  }
  writeViaTempSync(file, (tmp) => {
    const fd = fs.openSync(tmp, 'w');
    try {
      const chunk: string[] = [];
      for (const s of samples) {
        chunk.push(JSON.stringify(sampleToJson(s)) + '\n');
        if (chunk.length >= 4096) fs.writeSync(fd, chunk.splice(0).join(''));
      }
      fs.writeSync(fd, chunk.join(''));
    } finally {
      fs.closeSync(fd);
    }
  });
}

export interface LoadSamplesOptions {
  format?: ImportFormat;
  onWarning?: (message: string) => void;
}

/** All samples of a file, which must be entirely good: a record file of Samples or any importable
 *  JSON/JSONL. A bad record is an error naming the file and line (benchmarks and splits must not
 *  silently lose records; `data import` is the tool that reports and skips). */
export function loadSampleFile(file: string, opts: LoadSamplesOptions = {}): Sample[] {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  if (fs.statSync(file).size === 0) throw new Error(`${file}: empty file (no records)`);
  if (looksLikeRecordFile(file)) return readSamples(file, opts.onWarning).messages;
  const result = importFiles([file], { format: opts.format, strict: true });
  if (result.samples.length === 0) throw new Error(`${file}: no records`);
  return result.samples;
}
