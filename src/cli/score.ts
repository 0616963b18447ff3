// `medgr2 score --reward-model DIR --in FILE --out FILE`: the generative reward of every candidate,
// P("Yes") / (P("Yes") + P("No")) (src/cycle/judge.ts), as medgr2.ScoredCandidate records. Images go
// through the judge folder's preprocessor_config.json (--min-pixels/--max-pixels override it).
import type { Command } from 'commander';
import { loadRole } from '../cycle/cycle';
import { scoreCandidates } from '../cycle/judge';
import type { Candidate } from '../data/proto';
import { readMessageFile, writeMessageFileAtomic } from '../data/record_files';
import { withPixelBounds } from '../model/folder_settings';
import { parseIntOption } from './options';
import { pixelBoundOptions } from './model_arg';
import { progressPrinter } from './progress_line';

export function registerScore(program: Command): void {
  const pixelBounds = pixelBoundOptions("the judge's");
  program
    .command('score')
    .description('judge candidate samples with the generative reward model')
    .requiredOption('--reward-model <dir>', 'judge model folder (config.json, safetensors, tokenizer.json)')
    .requiredOption('--in <file>', 'record file of medgr2.Candidate (from medgr2 generate)')
    .requiredOption('--out <file>', 'record file of medgr2.ScoredCandidate')
    .option('--round <n>', 'judge round recorded in each score', parseIntOption('--round'), 0)
    .option('--batch-size <n>', 'pairs per forward pass', parseIntOption('--batch-size', 1), 32)
    .addOption(pixelBounds[0])
    .addOption(pixelBounds[1])
    .action(async (o) => {
      const cands = readMessageFile<Candidate>(o.in, { expect: 'medgr2.Candidate' }).messages;
      const { model, tok, processor } = await loadRole(o.rewardModel);
      try {
        const p = progressPrinter();
        const scored = await scoreCandidates(model, tok, cands, {
          ...withPixelBounds(processor, o),
          judgeRound: o.round,
          batchSize: o.batchSize,
          progress: (d, t) => p('score', d, t),
        });
        writeMessageFileAtomic(o.out, 'medgr2.ScoredCandidate', scored);
        const r = scored.filter((s) => s.candidate.valid).map((s) => s.reward);
        const mean = r.reduce((a, b) => a + b, 0) / Math.max(1, r.length);
        process.stdout.write(
          `${scored.length} candidates scored (${r.length} valid, mean reward ${mean.toFixed(3)}) -> ${o.out}\n`,
        );
      } finally {
        await model.dispose();
      }
    });
}
