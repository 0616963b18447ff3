// `medgr2 inspect FILE [--type T]`: prints any record file (Samples, Candidates, scored candidates,
// run manifests, TensorBoard events) as JSON lines, one object per record.
import type { Command } from 'commander';
import * as fs from 'node:fs';
import type { Candidate, Sample, ScoredCandidate } from '../data/proto';
import { readMessageFile, TENSORBOARD_EVENT } from '../data/record_files';
import { looksLikeRecordFile } from '../data/records';
import { sampleToJson } from '../data/sample_json';

const TYPE_NAMES: Record<string, string> = {
  sample: 'medgr2.Sample',
  candidate: 'medgr2.Candidate',
  scored: 'medgr2.ScoredCandidate',
  manifest: 'medgr2.RunManifest',
  event: TENSORBOARD_EVENT,
};

/** Samples nested in other records print in the same shape as Samples on their own. */
function toJson(typeName: string, m: Record<string, unknown>): unknown {
  switch (typeName) {
    case 'medgr2.Sample':
      return sampleToJson(m as unknown as Sample);
    case 'medgr2.Candidate': {
      const c = m as unknown as Candidate;
      return { ...c, sample: c.sample ? sampleToJson(c.sample) : null };
    }
    case 'medgr2.ScoredCandidate': {
      const sc = m as unknown as ScoredCandidate;
      const c = sc.candidate;
      return { ...sc, candidate: c ? { ...c, sample: c.sample ? sampleToJson(c.sample) : null } : null };
    }
    default:
      return m;
  }
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('print a record file (samples, candidates, manifests, TensorBoard events) as JSON lines')
    .argument('<file>', 'a medgr2 record file or a TensorBoard event file')
    .option('--type <type>', `what the records hold when the file does not say (${Object.keys(TYPE_NAMES).join(', ')})`)
    .action((file: string, opts: { type?: string }) => {
      let type: string | undefined;
      if (opts.type !== undefined) {
        type = TYPE_NAMES[opts.type];
        if (!type) throw new Error(`--type must be one of ${Object.keys(TYPE_NAMES).join(', ')}, got '${opts.type}'`);
      }
      if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
      if (fs.statSync(file).size === 0) throw new Error(`${file}: empty file (no records)`);
      if (!looksLikeRecordFile(file)) {
        throw new Error(
          `${file}: not a record file (its first frame header fails its CRC); JSON/JSONL data goes through 'medgr2 data import'`,
        );
      }
      const result = readMessageFile<Record<string, unknown>>(file, {
        type,
        onWarning: (msg) => process.stderr.write(`medgr2: warning: ${msg}\n`),
      });
      const lines: string[] = [];
      for (const m of result.messages) {
        lines.push(JSON.stringify(toJson(result.typeName, m)));
        if (lines.length >= 1000) process.stdout.write(lines.splice(0).join('\n') + '\n');
      }
      if (lines.length > 0) process.stdout.write(lines.join('\n') + '\n');
    });
}
