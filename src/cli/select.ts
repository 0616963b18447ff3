// `medgr2 select --in FILE --out FILE [--threshold T | --top-k K | --top-fraction F] [--balance]
// [--keep-contradicted] [--stated-facts]`: marks which scored candidates are kept
// (src/cycle/select.ts). Every candidate is written back with its flag and reason.
import type { Command } from 'commander';
import { selectCandidates, selectionSummary } from '../cycle/select';
import type { ScoredCandidate } from '../data/proto';
import { readMessageFile, writeMessageFileAtomic } from '../data/record_files';
import { parseIntOption } from './options';
import { describedFact } from '../cycle/recipe';

export function registerSelect(program: Command): void {
  program
    .command('select')
    .description(
      'keep the best scored candidates (threshold, top-k or top fraction per group, balanced, de-duplicated); the rest stay with their scores',
    )
    .requiredOption('--in <file>', 'record file of medgr2.ScoredCandidate')
    .requiredOption('--out <file>', 'record file of medgr2.ScoredCandidate with selected flags')
    .option('--threshold <t>', 'keep rewards >= t (default 0.5)', Number)
    .option('--top-k <k>', 'keep the k best', parseIntOption('--top-k'))
    .option(
      '--top-fraction <f>',
      "keep the best fraction f of each (modality, task) group (the cycle's default: 0.5)",
      Number,
    )
    .option('--balance', 'at most --max-per-group per (modality, task)')
    .option(
      '--max-per-group <n>',
      'cap per group with --balance (default: twice an even share)',
      parseIntOption('--max-per-group', 1),
    )
    .option('--random', 'rank by a seeded draw instead of the reward (the no-reward-filter ablation)')
    .option('--seed <n>', 'seed of --random', parseIntOption('--seed'), 0)
    .option(
      '--keep-contradicted',
      'keep candidates whose rationale names another answer of their task (default: not selected)',
    )
    .option(
      '--stated-facts',
      "also leave out candidates whose rationale, read in MedSynth's caption phrasings, states another fact of the kind the question asks (the default cycle's rule)",
    )
    .action((o) => {
      if (o.threshold !== undefined && !(o.threshold >= 0 && o.threshold <= 1))
        throw new Error(`--threshold must be within 0..1, got ${o.threshold}`);
      const scored = readMessageFile<ScoredCandidate>(o.in, { expect: 'medgr2.ScoredCandidate' }).messages;
      const sel = selectCandidates(scored, {
        threshold: o.threshold,
        topK: o.topK,
        topFraction: o.topFraction,
        balance: !!o.balance,
        maxPerGroup: o.maxPerGroup,
        rankBy: o.random ? 'random' : 'reward',
        seed: o.seed,
        keepContradicted: !!o.keepContradicted,
        statedFact: o.statedFacts ? describedFact : undefined,
      });
      writeMessageFileAtomic(o.out, 'medgr2.ScoredCandidate', sel);
      const s = selectionSummary(sel);
      process.stdout.write(`${s.candidates} candidates, ${s.valid} valid, ${s.kept} kept -> ${o.out}\n`);
    });
}
