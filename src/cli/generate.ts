// `medgr2 generate --generator DIR --pool IMAGES --per-image K --out FILE [--ground-answers]`: candidate samples for
// unlabelled images (src/cycle/generator.ts); invalid replies are kept, marked with the reason.
// The generator folder's preprocessor_config.json resizes the images (--min-pixels/--max-pixels
// override it); its generation_config.json gives the stop tokens and, when it samples (do_sample),
// the decoding defaults (decodingOf); flags override them.
import { Option, type Command } from 'commander';
import { loadRole } from '../cycle/cycle';
import { generateCandidates, readPool, seedCopyKey } from '../cycle/generator';
import { medsynthReplyParser } from '../cycle/recipe';
import { loadSampleFile } from '../data/sample_files';
import { writeMessageFileAtomic } from '../data/record_files';
import { stopTokensOf, withPixelBounds, type GenerationSettings } from '../model/folder_settings';
import { parseIntOption, parseNumberOption } from './options';
import { pixelBoundOptions } from './model_arg';
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

/** How `medgr2 generate` decodes, and which of it came from generation_config.json. */
export interface Decoding {
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
  maxNewTokens: number;
  /** "temperature 0.1", ... for each value taken from the folder (for the log line). */
  fromFolder: string[];
}

/**
 * The decoding of `generate`: each flag the user gave wins; else the folder's value; else the
 * command's default (`flags` holds those). Sampling values (temperature, top_p, top_k) come from the
 * folder only when it samples (do_sample true), as transformers uses them only then; a folder that
 * decodes greedily keeps the command's sampling, since candidates of one image must differ.
 * repetition_penalty and max_new_tokens apply in greedy decoding too, so they come from the folder
 * either way.
 */
export function decodingOf(
  flags: Omit<Decoding, 'fromFolder'>,
  given: (key: keyof Omit<Decoding, 'fromFolder'>) => boolean,
  gen: GenerationSettings,
): Decoding {
  const out: Decoding = { ...flags, fromFolder: [] };
  const take = (key: keyof Omit<Decoding, 'fromFolder'>, value: number | undefined, name: string) => {
    if (value === undefined || given(key)) return;
    out[key] = value;
    out.fromFolder.push(`${name} ${value}`);
  };
  if (gen.doSample === true) {
    take('temperature', gen.temperature, 'temperature');
    take('topP', gen.topP, 'top_p');
    take('topK', gen.topK, 'top_k');
  }
  take('repetitionPenalty', gen.repetitionPenalty, 'repetition_penalty');
  take('maxNewTokens', gen.maxNewTokens, 'max_new_tokens');
  return out;
}

export function registerGenerate(program: Command): void {
  const pixelBounds = pixelBoundOptions("the generator's");
  program
    .command('generate')
    .description('write candidate samples for unlabelled images with a generator model')
    .requiredOption('--generator <dir>', 'generator model folder (config.json, safetensors, tokenizer.json)')
    .requiredOption('--pool <path>', 'folder of images, or a pool.jsonl of {image_path, modality_hint}')
    .requiredOption('--out <file>', 'record file of medgr2.Candidate')
    .option('--per-image <k>', 'candidates per image', parseIntOption('--per-image', 1), 4)
    // Each default is the generator folder's generation_config.json value when it has one (decodingOf).
    .addOption(
      new Option('--temperature <t>', 'sampling temperature')
        .argParser(parseNumberOption('--temperature', (t) => t >= 0, 'a number >= 0'))
        .default(1.0, "the generator's generation_config.json's when it samples, else 1"),
    )
    .addOption(
      new Option('--top-p <p>', 'nucleus sampling')
        .argParser(parseNumberOption('--top-p', (p) => p > 0 && p <= 1, 'a number in (0, 1]'))
        .default(0.95, "the generator's when it samples, else 0.95"),
    )
    .addOption(
      new Option('--top-k <k>', 'top-k sampling, 0: off')
        .argParser(parseIntOption('--top-k'))
        .default(0, "the generator's when it samples, else 0"),
    )
    .addOption(
      new Option('--repetition-penalty <r>', "HF's repetition penalty, 1: off")
        .argParser(parseNumberOption('--repetition-penalty', (r) => r > 0, 'a number > 0'))
        .default(1.0, "the generator's, else 1"),
    )
    .addOption(pixelBounds[0])
    .addOption(pixelBounds[1])
    .option(
      '--task-mix <list>',
      'tasks to ask for, "Task=weight,..."',
      'Modality Recognition,Anatomy Identification,Disease Diagnosis',
    )
    .option('--seed-data <file>', 'seed samples: candidates equal to one of them are marked copies')
    .option(
      '--ground-answers',
      "answer each question with the fact the image's description (pool.jsonl 'description', else the reply's rationale) states for its task, in MedSynth's caption phrasings (the cycle's generate.groundAnswers)",
    )
    .option('--seed <n>', 'sampling seed', parseIntOption('--seed'), 1)
    .option('--round <n>', 'generator round recorded in each candidate', parseIntOption('--round'), 0)
    .option('--batch-size <n>', 'prompts per generation batch', parseIntOption('--batch-size', 1), 64)
    .addOption(
      new Option('--max-new-tokens <n>', 'longest reply')
        .argParser(parseIntOption('--max-new-tokens', 1))
        .default(96, "the generator's, else 96"),
    )
    .action(async (o, cmd: Command) => {
      const pool = readPool(o.pool);
      const seedKeys = o.seedData ? new Set(loadSampleFile(o.seedData).map(seedCopyKey)) : undefined;
      const { model, tok, processor, generation } = await loadRole(o.generator);
      try {
        const dec = decodingOf(o, (key) => cmd.getOptionValueSource(key) !== 'default', generation);
        if (dec.fromFolder.length > 0)
          process.stderr.write(`generate: from ${generation.source}: ${dec.fromFolder.join(', ')} (flags override)\n`);
        const cands = await generateCandidates(model, tok, pool, {
          ...withPixelBounds(processor, o),
          perImage: o.perImage,
          temperature: dec.temperature,
          topP: dec.topP,
          topK: dec.topK,
          repetitionPenalty: dec.repetitionPenalty,
          // generation_config.json's eos ids end a reply, else the chat template's end of turn / text
          stopTokens: stopTokensOf(generation, [tok.special.imEnd, tok.special.endOfText]),
          taskMix: parseTaskMix(o.taskMix),
          seed: o.seed,
          batchSize: o.batchSize,
          round: o.round,
          maxNewTokens: dec.maxNewTokens,
          seedKeys,
          parse: medsynthReplyParser(!!o.groundAnswers),
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
