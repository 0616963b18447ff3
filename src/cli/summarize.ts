// `medgr2 summarize RUN... [--out DIR]`: finished `medgr2 cycle` runs of one configuration on several
// world seeds (`--seed N`), as one table of means ± standard deviations and the report's claims judged
// on the means (src/cycle/seed_summary.ts). Prints summary.md; with --out also writes DIR/summary.md and
// DIR/summary.json.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { formatSeedSummary, readSeedRun, summarizeSeeds } from '../cycle/seed_summary';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic_write';

export function registerSummarize(program: Command): void {
  program
    .command('summarize')
    .description(
      'summarize finished cycle runs on several world seeds: mean ± sd per arm and test set, claims on the means',
    )
    .argument('<runs...>', 'run folders of `medgr2 cycle --seed N --out DIR` (same configuration, distinct seeds)')
    .option('--out <dir>', 'also write DIR/summary.md and DIR/summary.json')
    .action(async (runs: string[], opts: { out?: string }) => {
      const summary = summarizeSeeds(runs.map((dir) => readSeedRun(path.resolve(dir))));
      const text = formatSeedSummary(summary);
      if (opts.out) {
        fs.mkdirSync(opts.out, { recursive: true });
        await writeFileAtomic(path.join(opts.out, 'summary.md'), text);
        await writeJsonAtomic(path.join(opts.out, 'summary.json'), summary);
      }
      process.stdout.write(text);
    });
}
