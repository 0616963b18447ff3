// `medgr2 summarize RUN... [--out DIR]`: finished `medgr2 cycle` runs of one configuration on several
// world seeds (`--seed N`), as one table of means ± standard deviations and the report's claims judged
// on the means (src/cycle/seed_summary.ts). Prints summary.md; with --out also writes DIR/summary.md and
// DIR/summary.json.
import * as path from 'node:path';
import type { Command } from 'commander';
import { formatSeedSummary, readSeedRun, summarizeSeeds, writeSeedSummary } from '../cycle/seed_summary';

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
      process.stdout.write(opts.out ? await writeSeedSummary(opts.out, summary) : formatSeedSummary(summary));
    });
}
