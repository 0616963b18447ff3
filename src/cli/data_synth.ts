// `medgr2 data synth --out DIR --count N --seed S [--unlabelled M]`: writes a MedSynth world
// (images, OmniMedVQA-format records, ground truth, unlabelled pool). See src/data/medsynth/world.ts.
import type { Command } from 'commander';
import { MODALITIES, type Modality } from '../data/medsynth/vocab';
import { synthesize } from '../data/medsynth/world';
import { parseIntOption } from './options';

function parseModalities(value: string): Modality[] {
  const wanted = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = wanted.filter((m) => !(MODALITIES as readonly string[]).includes(m));
  if (bad.length) throw new Error(`--modalities: unknown ${bad.join(', ')} (known: ${MODALITIES.join(', ')})`);
  return wanted as Modality[];
}

/** A line per `every` images when not on a terminal; one rewritten line on a terminal. */
function progressPrinter(every: number): (done: number, total: number) => void {
  const tty = process.stderr.isTTY;
  return (done, total) => {
    if (tty) {
      process.stderr.write(`\rmedsynth: ${done}/${total} images${done === total ? '\n' : ''}`);
    } else if (done % every === 0 || done === total) {
      process.stderr.write(`medsynth: ${done}/${total} images\n`);
    }
  };
}

export function registerDataSynth(data: Command): void {
  data
    .command('synth')
    .description(
      'render a MedSynth world: labelled images with four-option questions, ground truth, and an unlabelled pool',
    )
    .requiredOption('--out <dir>', 'output folder')
    .requiredOption(
      '--count <n>',
      'labelled images (each gets one question per task that applies)',
      parseIntOption('--count'),
    )
    .requiredOption('--seed <s>', 'seed: same seed, same bytes', parseIntOption('--seed', -(2 ** 31)))
    .option('--unlabelled <m>', 'unlabelled pool images', parseIntOption('--unlabelled'), 0)
    .option(
      '--captioned <n>',
      'captioned images over all modalities (noisy prose, the pre-training stand-in)',
      parseIntOption('--captioned'),
      0,
    )
    .option(
      '--caption-noise <p>',
      'probability that a caption names a wrong modality, anatomy or finding (each)',
      parseFloat,
      0.15,
    )
    .option('--size <px>', 'image side in pixels', parseIntOption('--size', 56), 112)
    .option('--modalities <list>', `comma-separated subset of: ${MODALITIES.join(', ')}`)
    .action(
      async (opts: {
        out: string;
        count: number;
        seed: number;
        unlabelled: number;
        captioned: number;
        captionNoise: number;
        size: number;
        modalities?: string;
      }) => {
        const summary = await synthesize({
          out: opts.out,
          count: opts.count,
          seed: opts.seed,
          unlabelled: opts.unlabelled,
          captioned: opts.captioned,
          captionNoise: opts.captionNoise,
          size: opts.size,
          modalities: opts.modalities ? parseModalities(opts.modalities) : undefined,
          progress: progressPrinter(100),
        });
        process.stdout.write(JSON.stringify(summary) + '\n');
      },
    );
}
