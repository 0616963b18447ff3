// `medgr2 data split FILE --by modality|task --test-fraction F --seed S --out DIR`: per-group seeded
// train/test split (Med-R1 protocol) into DIR/<group>.train.rec and DIR/<group>.test.rec (or .jsonl),
// plus DIR/split.json describing what went where.
import type { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IMPORT_FORMATS, type ImportFormat } from '../data/importers/types';
import { loadSampleFile, writeSampleFile } from '../data/sample_files';
import { groupFileStem, splitByGroup, type SplitBy } from '../data/split';
import { writeJsonAtomicSync } from '../util/atomic_write';

interface SplitCliOptions {
  by: string;
  testFraction: string;
  seed: string;
  out: string;
  jsonl?: boolean;
  format?: string;
}

function parseNumber(flag: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`${flag} must be a number, got '${text}'`);
  return n;
}

export function registerDataSplit(data: Command): void {
  data
    .command('split')
    .description('split samples per modality or task into seeded train/test sets (Med-R1 protocol)')
    .argument('<file>', 'a record file of samples or any importable file')
    .requiredOption('--by <field>', 'modality or task')
    .requiredOption('--test-fraction <f>', 'fraction of each group for test: the first ceil(f*n) after shuffling')
    .requiredOption('--seed <s>', 'integer seed of the shuffle')
    .requiredOption('--out <dir>', 'output folder')
    .option('--jsonl', 'write canonical JSONL instead of record files')
    .option('--format <format>', `input format when FILE is not a record file (${IMPORT_FORMATS.join(', ')})`)
    .action((file: string, opts: SplitCliOptions) => {
      if (opts.by !== 'modality' && opts.by !== 'task')
        throw new Error(`--by must be modality or task, got '${opts.by}'`);
      const fraction = parseNumber('--test-fraction', opts.testFraction);
      const seed = parseNumber('--seed', opts.seed);
      const samples = loadSampleFile(file, {
        format: opts.format as ImportFormat | undefined,
        onWarning: (m) => process.stderr.write(`medgr2: warning: ${m}\n`),
      });
      const splits = splitByGroup(samples, opts.by as SplitBy, fraction, seed);
      fs.mkdirSync(opts.out, { recursive: true });
      const ext = opts.jsonl ? 'jsonl' : 'rec';
      const groups = splits.map((g) => {
        const stem = groupFileStem(g.group);
        const trainFile = `${stem}.train.${ext}`;
        const testFile = `${stem}.test.${ext}`;
        writeSampleFile(path.join(opts.out, trainFile), g.train);
        writeSampleFile(path.join(opts.out, testFile), g.test);
        return {
          group: g.group,
          total: g.train.length + g.test.length,
          train: g.train.length,
          test: g.test.length,
          trainFile,
          testFile,
        };
      });
      const summary = { source: file, by: opts.by, testFraction: fraction, seed, samples: samples.length, groups };
      writeJsonAtomicSync(path.join(opts.out, 'split.json'), summary);
      for (const g of groups) process.stdout.write(`${g.group}: ${g.train} train, ${g.test} test\n`);
      process.stdout.write(
        `split ${samples.length} samples by ${opts.by} into ${groups.length} group(s) -> ${opts.out}\n`,
      );
    });
}
