// `medgr2 cycle [--rounds R] [--seed-data FILE] [--pool DIR] [--model DIR] [--out DIR] [--resume]
//               [--no-reward-filter] [--no-co-evolve] [--config FILE]`: the MedGR² cycle and its report
// (src/cycle/ablations.ts). With no arguments: a MedSynth world and the tiny model.
import * as path from 'node:path';
import type { Command } from 'commander';
import { runCycleWithAblations } from '../cycle/ablations';
import { defaultCycleConfig, mergeCycleConfig, type CycleConfig } from '../cycle/config';
import { freshRunFolder } from '../cycle/paths';
import { readConfigDocument } from './config';
import { parseIntOption } from './options';
import { progressPrinter } from './progress_line';
import { withRanks, type RanksConfig } from './ranks';
import { CycleRanks } from '../cycle/ranks';

function parseZero(v: string): 0 | 1 | 2 {
  if (!['0', '1', '2'].includes(v)) throw new Error(`--zero: 0, 1 or 2, got '${v}'`);
  return Number(v) as 0 | 1 | 2;
}

/** Defaults, then the --config file (deep-merged and checked), then the flags given. */
function cycleConfigOf(o: Record<string, unknown>, given: (flag: string) => boolean): CycleConfig {
  const d = defaultCycleConfig();
  let cfg = d;
  if (typeof o.config === 'string') {
    const doc = readConfigDocument(o.config);
    if (doc !== undefined) cfg = mergeCycleConfig(d, doc, o.config);
  }
  const flags: Partial<CycleConfig> = {};
  for (const key of ['rounds', 'seed', 'seedData', 'pool', 'model', 'out'] as const) {
    if (given(key)) (flags as Record<string, unknown>)[key] = o[key];
  }
  cfg = { ...cfg, ...flags, resume: !!o.resume };
  // Without --out (or an `out` in the file) a fresh folder beside earlier runs; --resume continues the default one.
  if (!given('out') && cfg.out === d.out && !cfg.resume) cfg = { ...cfg, out: freshRunFolder(d.out) };
  return cfg;
}

export function registerCycle(program: Command): void {
  const d = defaultCycleConfig();
  const cmd = program
    .command('cycle')
    .description(
      'run the MedGR² cycle: generate, score, select, co-develop, policy SFT + GRPO, evaluate; writes OUT/report.md',
    )
    .option('--rounds <r>', `rounds of the cycle (default: ${d.rounds})`, parseIntOption('--rounds', 1))
    .option('--seed-data <file>', 'labelled seed samples (default: a MedSynth world)')
    .option('--pool <path>', 'unlabelled images: a folder or pool.jsonl (default: the MedSynth pool)')
    .option('--model <dir>', 'initial model folder with its tokenizer (default: the tiny model)')
    .option('--out <dir>', `run folder (default: ${d.out}, or ${d.out}-2, -3, ... when that holds an earlier run)`)
    .option('--resume', 'continue the run in --out from its last finished stage')
    .option('--no-reward-filter', 'also run the ablation: random selection instead of the reward model')
    .option('--no-co-evolve', 'also run the ablation: generator and reward model frozen after round 1')
    .option('--seed <n>', `seed of the world, the model and every draw (default: ${d.seed})`, parseIntOption('--seed'))
    .option(
      '--config <file>',
      'JSON or YAML file setting any field of the config, groups merged key by key (see OUT/config.json); flags win',
    )
    .option(
      '--dist-backend <name>',
      'process-group backend when launched on several ranks: auto, gloo or nccl (default: auto)',
      'auto',
    )
    .option(
      '--dist-timeout <s>',
      'seconds a rank waits on joining and on each collective (default: 300)',
      parseIntOption('--dist-timeout', 1),
      300,
    )
    .option(
      '--zero <stage>',
      'on several ranks: ZeRO stage 0, 1 or 2 of every training stage (default: 0)',
      parseZero,
      0,
    )
    .action(async (o) => {
      // Every rank resolves the config (a fresh --out folder included) before any rank creates anything.
      const cfg = cycleConfigOf(o, (key) => cmd.getOptionValueSource(key) === 'cli');
      if (!['auto', 'gloo', 'nccl'].includes(o.distBackend))
        throw new Error(`--dist-backend: auto, gloo or nccl, got '${o.distBackend}'`);
      const ranksCfg: RanksConfig = {
        device: 'cpu',
        distBackend: o.distBackend,
        distTimeout: o.distTimeout,
        zero: o.zero,
      };
      await withRanks('cycle', ranksCfg, async (_c, dist) => {
        const ranks = new CycleRanks(dist, o.zero, path.join(cfg.out, '.ranks'));
        // commander's --no-x sets x = false; the main chain always filters and co-evolves
        const { text } = await runCycleWithAblations(
          cfg,
          { noRewardFilter: o.rewardFilter === false, noCoEvolve: o.coEvolve === false },
          { progress: ranks.isMain ? progressPrinter() : undefined },
          ranks,
        );
        if (ranks.isMain) process.stdout.write(`${text}\n\nreport: ${path.join(cfg.out, 'report.md')}\n`);
      });
    });
}
