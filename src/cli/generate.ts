// `medgr2 generate --generator DIR --pool IMAGES --per-image K --out FILE`: candidate samples for
// unlabelled images (src/cycle/generator.ts); invalid replies are kept, marked with the reason.
import type { Command } from 'commander';
import { loadRole } from '../cycle/cycle';
import { generateCandidates, readPool, seedCopyKey } from '../cycle/generator';
import { loadSampleFile } from '../data/sample_files';
import { writeMessageFileAtomic } from '../data/record_files';
import { parseIntOption } from './options';
import { progressPrinter } from './progress_line';

function parseTaskMix(s: string): Record<string, number> {
  // "Disease Diagnosis=2,Modality Recognition=1" or a plain comma list (equal weights)
  const mix: Record<string, number> = {};
  for (const part of s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const [name, w] = part.split('=');
    const weight = w === undefined ? 1 : Number(w);
    if (!(weight >= 0)) throw new Error(`--task-mix: weight of '${name}' must be a number >= 0, got '${w}'`);
    mix[name.trim()] = weight;
  }
  return mix;
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('write candidate samples for unlabelled images with a generator model')
    .requiredOption('--generator <dir>', 'generator model folder (config.json, safetensors, tokenizer.json)')
    .requiredOption('--pool <path>', 'folder of images, or a pool.jsonl of {image_path, modality_hint}')
    .requiredOption('--out <file>', 'record file of medgr2.Candidate')
    .option('--per-image <k>', 'candidates per image', parseIntOption('--per-image', 1), 4)
    .option('--temperature <t>', 'sampling temperature', Number, 1.0)
    .option('--top-p <p>', 'nucleus sampling', Number, 0.95)
    .option(
      '--task-mix <list>',
      'tasks to ask for, "Task=weight,..."',
      'Modality Recognition,Anatomy Identification,Disease Diagnosis',
    )
    .option('--seed-data <file>', 'seed samples: candidates equal to one of them are marked copies')
    .option('--seed <n>', 'sampling seed', parseIntOption('--seed'), 1)
    .option('--round <n>', 'generator round recorded in each candidate', parseIntOption('--round'), 0)
    .option('--batch-size <n>', 'prompts per generation batch', parseIntOption('--batch-size', 1), 64)
    .option('--max-new-tokens <n>', 'longest reply', parseIntOption('--max-new-tokens', 1), 96)
    .action(async (o) => {
      const pool = readPool(o.pool);
      const seedKeys = o.seedData ? new Set(loadSampleFile(o.seedData).map(seedCopyKey)) : undefined;
      const { model, tok } = await loadRole(o.generator);
      try {
        const cands = await generateCandidates(model, tok, pool, {
          perImage: o.perImage,
          temperature: o.temperature,
          topP: o.topP,
          taskMix: parseTaskMix(o.taskMix),
          seed: o.seed,
          batchSize: o.batchSize,
          round: o.round,
          maxNewTokens: o.maxNewTokens,
          seedKeys,
          progress: (
            (p) => (d: number, t: number) =>
              p('generate', d, t)
          )(progressPrinter()),
        });
        writeMessageFileAtomic(o.out, 'medgr2.Candidate', cands);
        const valid = cands.filter((c) => c.valid).length;
        process.stdout.write(
          `${cands.length} candidates for ${pool.length} images, ${valid} valid (${((100 * valid) / Math.max(1, cands.length)).toFixed(1)}%) -> ${o.out}\n`,
        );
      } finally {
        await model.dispose();
      }
    });
}
