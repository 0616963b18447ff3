// `medgr2 cycle [--rounds R] [--seed-data FILE] [--pool DIR] [--model DIR] [--out DIR] [--resume]
//               [--no-reward-filter] [--no-co-evolve] [--study] [--reward-model generative|graded]
//               [--grpo-reward verifiable|reward-model] [--ground-answers] [--lora-rank R [--lora-alpha A] ...]
//               [--config FILE]
//               [--generator-prompt direct|step|metacognitive] [--min-pixels N] [--max-pixels N]`:
// the MedGR² cycle and its report (src/cycle/ablations.ts). With no arguments: a MedSynth world and
// the tiny model. With --model (flag or config file): the instruct recipe, whose defaults are
// instructCycleConfig's (src/cycle/config.ts); the last three flags belong to it.
import * as path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { runCycleWithAblations, STUDY } from '../cycle/ablations';
import { GRPO_REWARDS, type GrpoRewardName } from '../cycle/judge_reward';
import {
  defaultCycleConfig,
  CYCLE_DTYPES,
  GENERATOR_PROMPT_STYLES,
  REWARD_MODELS,
  instructCycleConfig,
  mergeCycleConfig,
  recipeOf,
  type CycleConfig,
} from '../cycle/config';
import { freshRunFolder } from '../cycle/paths';
import { readSeedRun, summarizeSeeds, writeSeedSummary } from '../cycle/seed_summary';
import { readConfigDocument } from './config';
import { parseIntOption, parseNumberOption, parseSeedListOption } from './options';
import { DECODER_PROJECTIONS, type LoraSpec } from '../model/lora';
import { pixelBoundOptions } from './model_arg';
import { progressPrinter } from './progress_line';
import { withRanks, type RanksConfig } from './ranks';
import { CycleRanks } from '../cycle/ranks';
import { setNumThreads } from '../index';

/**
 * libtorch's intra-op threads for a cycle: --threads when given; else one for the default recipe on the
 * CPU when no thread variable is set; else undefined (the addon's choice: every core, or
 * MEDGR2_NUM_THREADS / OMP_NUM_THREADS). The tiny model's ops are too small to split: on a 2-core
 * machine one thread ran its caption SFT steps in 0.55-0.59 s against 0.68-0.74 s on two, and its
 * numbers then do not depend on how many cores the machine has (a reduction split over more threads
 * rounds differently).
 */
export function cycleThreads(
  cfg: Pick<CycleConfig, 'model' | 'device'>,
  flag: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
): number | undefined {
  if (flag !== undefined) return flag;
  if (env.MEDGR2_NUM_THREADS || env.OMP_NUM_THREADS) return undefined;
  return recipeOf(cfg) === 'medsynth' && (cfg.device ?? 'cpu') === 'cpu' ? 1 : undefined;
}

function parseZero(v: string): 0 | 1 | 2 {
  if (!['0', '1', '2'].includes(v)) throw new Error(`--zero: 0, 1 or 2, got '${v}'`);
  return Number(v) as 0 | 1 | 2;
}

/** The flags of the instruct recipe (config keys of the same names). */
const INSTRUCT_FLAGS = ['generatorPrompt', 'minPixels', 'maxPixels'] as const;

/**
 * Defaults, then the --config file (deep-merged and checked), then the flags given. The defaults are
 * the instruct recipe's when --model is given (as a flag or in the file), the MedSynth run's otherwise.
 */
function cycleConfigOf(o: Record<string, unknown>, given: (flag: string) => boolean): CycleConfig {
  const doc = typeof o.config === 'string' ? readConfigDocument(o.config) : undefined;
  const merged = (base: CycleConfig) => (doc !== undefined ? mergeCycleConfig(base, doc, o.config as string) : base);
  let cfg = merged(defaultCycleConfig());
  const model = given('model') ? (o.model as string) : cfg.model;
  const d = model ? instructCycleConfig() : defaultCycleConfig();
  if (model) cfg = merged(d);
  const flags: Partial<CycleConfig> = {};
  for (const key of [
    'rounds',
    'seed',
    'seedData',
    'pool',
    'model',
    'out',
    'device',
    'dtype',
    'rewardModel',
    ...INSTRUCT_FLAGS,
  ] as const) {
    if (given(key)) (flags as Record<string, unknown>)[key] = o[key];
  }
  cfg = { ...cfg, ...flags, resume: !!o.resume };
  if (given('grpoReward')) cfg = { ...cfg, grpo: { ...cfg.grpo, reward: o.grpoReward as GrpoRewardName } };
  if (given('groundAnswers')) cfg = { ...cfg, generate: { ...cfg.generate, groundAnswers: true } };
  const lora = loraFlags(o, given);
  if (lora) cfg = { ...cfg, lora: { ...cfg.lora, ...lora } };
  if (recipeOf(cfg) !== 'instruct') {
    const stray = INSTRUCT_FLAGS.filter((k) => cfg[k] !== undefined);
    if (stray.length)
      throw new Error(
        `${stray.map((k) => `--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} (config key ${k})`).join(', ')}: only with --model (the default recipe's prompts and images are the tiny model's)`,
      );
  }
  // Without --out (or an `out` in the file) a fresh folder beside earlier runs; --resume continues the default one.
  if (!given('out') && cfg.out === d.out && !cfg.resume) cfg = { ...cfg, out: freshRunFolder(d.out) };
  return cfg;
}

/** The --lora-* flags given, as config `lora` keys (undefined when none is). */
function loraFlags(o: Record<string, unknown>, given: (flag: string) => boolean): Partial<LoraSpec> | undefined {
  const out: Partial<LoraSpec> = {};
  if (given('loraRank')) out.rank = o.loraRank as number;
  if (given('loraAlpha')) out.alpha = o.loraAlpha as number;
  if (given('loraDropout')) out.dropout = o.loraDropout as number;
  if (given('loraTargets'))
    out.targets = (o.loraTargets as string)
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t.length > 0);
  if (given('loraVision')) out.vision = true;
  if (given('loraMerger')) out.merger = true;
  return Object.keys(out).length > 0 ? out : undefined;
}

export function registerCycle(program: Command): void {
  const pixelBounds = pixelBoundOptions("with --model: the model folder's");
  const d = defaultCycleConfig();
  const cmd = program
    .command('cycle')
    .description(
      'run the MedGR² cycle: generate, score, select, co-develop, policy SFT + GRPO, evaluate; writes OUT/report.md',
    )
    .option('--rounds <r>', `rounds of the cycle (default: ${d.rounds})`, parseIntOption('--rounds', 1))
    .option('--seed-data <file>', 'labelled seed samples (default: a MedSynth world)')
    .option('--pool <path>', 'unlabelled images: a folder or pool.jsonl (default: the MedSynth pool)')
    .option(
      '--model <dir>',
      'initial model folder (a pretrained VLM, e.g. Qwen2.5-VL-7B-Instruct) with its tokenizer: the instruct recipe (default: the tiny model)',
    )
    .option('--device <d>', 'where every role runs: cpu, cuda (each rank its LOCAL_RANK GPU) or cuda:N (default: cpu)')
    .option(
      '--dtype <t>',
      `roles' parameter dtype: ${CYCLE_DTYPES.join(', ')} (default: as the model folder stores them)`,
    )
    .option(
      '--generator-prompt <style>',
      `with --model: how the generator is asked for a question: ${GENERATOR_PROMPT_STYLES.join(', ')} (default: metacognitive)`,
      (v: string) => {
        if (!(GENERATOR_PROMPT_STYLES as readonly string[]).includes(v))
          throw new InvalidArgumentError(`--generator-prompt: ${GENERATOR_PROMPT_STYLES.join(', ')}, got '${v}'`);
        return v;
      },
    )
    .addOption(pixelBounds[0])
    .addOption(pixelBounds[1])
    .option('--out <dir>', `run folder (default: ${d.out}, or ${d.out}-2, -3, ... when that holds an earlier run)`)
    .option('--resume', 'continue the run in --out from its last finished stage')
    .option(
      '--threads <n>',
      "libtorch intra-op threads (default: 1 for the tiny model on the CPU, else the addon's: every core)",
      parseIntOption('--threads', 1),
    )
    .option('--no-reward-filter', 'also run the ablation: random selection instead of the reward model')
    .option('--no-co-evolve', 'also run the ablation: generator and reward model frozen after round 1')
    .option(
      '--study',
      'the full study: both ablations and the data-efficiency comparison (top-k by reward vs random subsets of round 1 at three sizes, SFT then GRPO), all in one report',
    )
    .option(
      '--reward-model <kind>',
      `the judge: ${REWARD_MODELS.join(', ')} (graded: the paper's scalar score head trained with MSE on four graded levels; config rewardModel)`,
      (v: string) => {
        if (!(REWARD_MODELS as readonly string[]).includes(v))
          throw new InvalidArgumentError(`--reward-model: ${REWARD_MODELS.join(', ')}, got '${v}'`);
        return v;
      },
    )
    .option(
      '--grpo-reward <name>',
      `the policy's GRPO reward: ${GRPO_REWARDS.join(', ')} (reward-model: 0.8 x the judge's score + 0.2 x exact match, the paper's; config grpo.reward)`,
      (v: string) => {
        if (!(GRPO_REWARDS as readonly string[]).includes(v))
          throw new InvalidArgumentError(`--grpo-reward: ${GRPO_REWARDS.join(', ')}, got '${v}'`);
        return v;
      },
    )
    .option(
      '--ground-answers',
      "answer each generated question with the fact the image's description states for its task (config generate.groundAnswers; src/cycle/grounding.ts)",
    )
    .option(
      '--lora-rank <r>',
      'LoRA: every training stage after the base trains a rank-r adapter on one shared base (PEFT adapter folders; config lora.rank)',
      parseIntOption('--lora-rank', 1),
    )
    .option(
      '--lora-alpha <a>',
      'LoRA alpha: the update is scaled by alpha / r (default: 2 x rank)',
      parseNumberOption('--lora-alpha'),
    )
    .option(
      '--lora-dropout <p>',
      "LoRA dropout on the adapters' input (default: 0)",
      parseNumberOption('--lora-dropout'),
    )
    .option('--lora-targets <names>', `decoder projections given adapters (default: ${DECODER_PROJECTIONS.join(',')})`)
    .option('--lora-vision', "LoRA: also adapt the vision blocks' linears")
    .option('--lora-merger', "LoRA: also adapt the merger's linears")
    .option('--seed <n>', `seed of the world, the model and every draw (default: ${d.seed})`, parseIntOption('--seed'))
    .option(
      '--seeds <list>',
      'run the whole configuration once per world seed ("1,2,3") into OUT/seed-N, then OUT/summary.md: mean ± sd over the seeds and the claims on the means (medgr2 summarize)',
      parseSeedListOption('--seeds'),
    )
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
      const threads = cycleThreads(cfg, o.threads as number | undefined);
      if (threads !== undefined) setNumThreads(threads);
      const ranksCfg: RanksConfig = {
        device: cfg.device ?? 'cpu',
        distBackend: o.distBackend,
        distTimeout: o.distTimeout,
        zero: o.zero,
      };
      if (o.seeds && cmd.getOptionValueSource('seed') === 'cli')
        throw new Error('--seed and --seeds: give one of them');
      const seeds: number[] | undefined = o.seeds;
      const runs = (seeds ?? [cfg.seed]).map((seed) =>
        seeds ? { ...cfg, seed, out: path.join(cfg.out, `seed-${seed}`) } : cfg,
      );
      await withRanks('cycle', ranksCfg, async (mine, dist) => {
        let isMain = true;
        for (const run of runs) {
          const ranks = new CycleRanks(dist, o.zero, path.join(run.out, '.ranks'));
          isMain = ranks.isMain;
          // commander's --no-x sets x = false; the main chain always filters and co-evolves
          const { text } = await runCycleWithAblations(
            { ...run, device: mine.device },
            o.study ? STUDY : { noRewardFilter: o.rewardFilter === false, noCoEvolve: o.coEvolve === false },
            { progress: ranks.isMain ? progressPrinter() : undefined },
            ranks,
            // independent stages side by side where the chain allows it (Cycle.sideBySide)
            { parallelLanes: true },
          );
          if (ranks.isMain) process.stdout.write(`${text}\n\nreport: ${path.join(run.out, 'report.md')}\n`);
        }
        if (seeds && isMain) {
          const text = await writeSeedSummary(cfg.out, summarizeSeeds(runs.map((run) => readSeedRun(run.out))));
          process.stdout.write(`\n${text}\nsummary: ${path.join(cfg.out, 'summary.md')}\n`);
        }
      });
    });
}
