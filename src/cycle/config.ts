// The cycle's configuration: every knob of a run with the defaults of the embedded MedSynth run, and
// the checked deep merge of a user's JSON/YAML config over them (an unknown key or a wrong type is an
// error naming the key, before any work starts).

/** Every knob of a run, with the defaults of the embedded MedSynth run (sized for ≤ 10 min on 2 cores). */
import type { ResolvedGrpoOptions } from '../train/grpo_options';
import type { LoraSpec } from '../model/lora';
import { GRPO_REWARDS, type GrpoRewardName } from './judge_reward';
import { checkTaskCard, type TaskCard } from './task_cards';
import { GRADES, QUESTION_TEXT } from '../data/medsynth/vocab';
export interface CycleConfig {
  out: string;
  rounds: number;
  seed: number;
  /** Labelled seed samples (any importable file); default: the MedSynth world's seed. */
  seedData?: string;
  /** Unlabelled images (folder or pool.jsonl); default: the MedSynth world's pool. */
  pool?: string;
  /** Initial model folder (config.json, safetensors, tokenizer.json); default: the tiny model. Set, the
   *  run follows the instruct recipe (recipeOf) and its defaults are instructCycleConfig's. */
  model?: string;
  /** Where every role runs: cpu, cuda (on several ranks: each rank's LOCAL_RANK device) or cuda:N; default cpu. */
  device?: string;
  /** The roles' parameter dtype (float32, bfloat16, float16); default: as the model folder stores them. */
  dtype?: (typeof CYCLE_DTYPES)[number];
  /** Instruct recipe: how the generator is asked for a sample (instruct_prompts.ts); default metacognitive. */
  generatorPrompt?: GeneratorPromptStyle;
  /** Instruct recipe: how the policy names its answer; absent: as the seed's keys do (answerFormatOf). */
  answerFormat?: AnswerFormat;
  /** Instruct recipe: image resize bounds in pixels; absent: the model folder's preprocessor_config.json. */
  minPixels?: number;
  maxPixels?: number;
  resume: boolean;
  /** The judge: 'generative' (default: P(Yes) of a Yes/No reply) or 'graded' (the paper's scalar score
   *  head, MSE on four graded levels; graded_pairs.ts). */
  rewardModel?: (typeof REWARD_MODELS)[number];
  /** LoRA (rank > 0): every training stage after the base (models/init) trains an adapter on the one
   *  shared base; the generator, judge and policy are adapter folders in PEFT's format. The rest
   *  default as src/model/lora.ts's LORA_DEFAULTS (alpha: 2 x rank from the CLI). */
  lora?: Partial<LoraSpec>;
  rewardFilter: boolean;
  coEvolve: boolean;
  world: {
    seedImages: number;
    poolImages: number;
    testImages: number;
    /** Modalities and tasks the seed covers; the rest are held out. */
    seedModalities: string[];
    seedTasks: string[];
    heldOutTask: string;
  };
  /**
   * batchSize: prompts per generate call (the instruct recipe: at most this many; the memory budget
   * decides, sizing.ts). memoryBudgetMiB (instruct recipe): the KV cache every generation (generate,
   * describe, eval, GRPO rollouts) may fill; absent in the default recipe, whose batches are fixed.
   */
  generate: {
    perImage: number;
    temperature: number;
    topP: number;
    batchSize: number;
    maxNewTokens: number;
    memoryBudgetMiB?: number;
    /** Default recipe: answer each question with the fact the image's description states for its task
     *  (grounding.ts; --ground-answers); absent: off. */
    groundAnswers?: boolean;
    /** Default recipe: tasks the seed lacks, written from these cards and answered from the image's
     *  description (task_cards.ts); absent: none. */
    taskCards?: TaskCard[];
  };
  /** floor: with topFraction, the reward a kept candidate must also reach (select.ts). */
  select: { threshold?: number; topK?: number; topFraction?: number; floor?: number; balance: boolean };
  /**
   * The stand-in for a pretrained VLM when the run starts from the random tiny model: captioned
   * MedSynth images over all eight modalities (noisy prose, no questions), learned before anything
   * else. Skipped with --model (a real model brings its own pre-training).
   */
  pretrain: { images: number; noise: number; steps: number; lr: number };
  /**
   * Warm start of generator and judge on the seed. The default recipe always runs them (the tiny model
   * must learn both formats). The instruct recipe (--model) defaults every one to off: 0 steps, no
   * fact swaps, no describe-pool; a --config that sets generatorSteps / judgeSteps above 0, factSwaps
   * above 0 or describePool to true asks for that warm-up.
   */
  warmup: {
    generatorSteps: number;
    judgeSteps: number;
    lr: number;
    judgeLr: number;
    factSwaps: number;
    /** Instruct recipe: describe every pool image with the initial weights first (the default recipe always does). */
    describePool?: boolean;
  };
  /**
   * judgeData: what the next judge learns besides the seed's pairs. 'kept' (default): the round's kept
   * samples as positives with negatives constructed from them (the paper's "retrained each cycle on new
   * data"); 'confident': the judge's own judgments above confidentHi / below confidentLo as labels,
   * which teach it its own mistakes (docs/tuning.md, issue 17).
   */
  coDevelop: {
    generatorSteps: number;
    judgeSteps: number;
    lr: number;
    confidentHi: number;
    confidentLo: number;
    judgeData?: (typeof JUDGE_DATA)[number];
  };
  policySft: { steps: number; lr: number; tokenBudget: number };
  /** selfConsistency: also train on the round's contradicted questions (select.ts), without their key. */
  grpo: {
    steps: number;
    lr: number;
    groupSize: number;
    promptsPerStep: number;
    temperature: number;
    selfConsistency: boolean;
    /** 'verifiable' (default): the answer's key (self-consistency without one) + format. 'reward-model':
     *  the paper's rewardModelWeight x the round's judge's score of the answer + exactMatchWeight x the
     *  verifiable answer term (+ format); judge_reward.ts. */
    reward?: GrpoRewardName;
    /** With reward 'reward-model': the weights of the two terms (default 0.8 and 0.2, the paper's). */
    rewardModelWeight?: number;
    exactMatchWeight?: number;
  } & Partial<
    Pick<
      ResolvedGrpoOptions,
      | 'beta'
      | 'kl'
      | 'lossType'
      | 'epsLow'
      | 'epsHigh'
      | 'oldLogp'
      | 'importanceSamplingLevel'
      | 'delta'
      | 'policyLoss'
      | 'maskTruncatedCompletions'
      | 'overlongBuffer'
      | 'overlongPenaltyFactor'
      | 'klInReward'
      | 'entropyCoef'
      | 'entropyTopQuantile'
      | 'tisCap'
      | 'maxSkippedSteps'
    >
  >;
  eval: { maxNewTokens: number };
  tokenBudget: number;
}

export function defaultCycleConfig(out = 'medgr2-cycle'): CycleConfig {
  // The history behind each value (runs, measurements, what was tried) is docs/tuning.md.
  return {
    out,
    rounds: 2,
    seed: 1,
    resume: false,
    rewardFilter: true,
    coEvolve: true,
    world: {
      seedImages: 64, // over the seed modalities: 16 each
      poolImages: 96, // over all eight modalities: 12 each
      // 240 seed-modality and 240 held-out-modality images: 720 questions a set, ~180 of the held-out
      // task (96 gave 144 and 38: a standard error of 4 points, more than the gaps the report judges)
      testImages: 480,
      seedModalities: ['CT', 'MRI', 'X-Ray', 'Dermoscopy'],
      seedTasks: ['Modality Recognition', 'Anatomy Identification', 'Disease Diagnosis'],
      heldOutTask: 'Lesion Grading',
    },
    // ~60 s: enough for greedy captions of unseen images to name their modality
    pretrain: { images: 384, noise: 0.15, steps: 500, lr: 3e-3 },
    // compact replies; 0.3 rather than 0.7 so the generator copies the described fact more often.
    // groundAnswers off: it lifts both policies on held-out modalities but GRPO no longer beats SFT
    // (docs/tuning.md, issue 17 session 12)
    // one task card: Lesion Grading, the task the default seed lacks (task_cards.ts)
    generate: {
      perImage: 8,
      temperature: 0.3,
      topP: 0.95,
      batchSize: 64,
      maxNewTokens: 64,
      groundAnswers: false,
      taskCards: [{ task: 'Lesion Grading', question: QUESTION_TEXT.grade[0], options: [...GRADES] }],
    },
    // the top half of each (modality, task) group: a judge near chance makes thresholds keep all or none
    select: { topFraction: 0.5, balance: true },
    // set by the 10-minute budget; the judge at 1e-3 (3e-3 knocks it onto the ln 2 plateau)
    warmup: { generatorSteps: 1000, judgeSteps: 1200, lr: 3e-3, judgeLr: 1e-3, factSwaps: 5 },
    // 100 generator steps: after 40 the round-2 generator still answered some questions off-task
    coDevelop: { generatorSteps: 100, judgeSteps: 40, lr: 1e-3, confidentHi: 0.9, confidentLo: 0.1 },
    policySft: { steps: 400, lr: 3e-3, tokenBudget: 2048 },
    // ~50 s a round; self-consistency on the contradicted questions is where GRPO beats SFT
    grpo: { steps: 160, lr: 2e-4, groupSize: 4, promptsPerStep: 16, temperature: 1.0, selfConsistency: true },
    // think style: a description of ~15 tokens, the tags and the answer
    eval: { maxNewTokens: 48 },
    tokenBudget: 2048,
  };
}

export const GENERATOR_PROMPT_STYLES = ['direct', 'step', 'metacognitive'] as const;
export type GeneratorPromptStyle = (typeof GENERATOR_PROMPT_STYLES)[number];
export const ANSWER_FORMATS = ['letter', 'text'] as const;
export type AnswerFormat = (typeof ANSWER_FORMATS)[number];

/** Which recipe a run follows: with --model, a pretrained instruct VLM ('instruct': plain-language
 *  prompts, no warm-ups unless asked, batches sized for the model); without, the MedSynth recipe of
 *  the tiny model ('medsynth'). The one switch; recipe.ts holds what differs. */
export type RecipeName = 'medsynth' | 'instruct';
export function recipeOf(cfg: Pick<CycleConfig, 'model'>): RecipeName {
  return cfg.model ? 'instruct' : 'medsynth';
}

/**
 * The defaults of a run with --model DIR: the default config with the warm-ups off and lengths,
 * learning rates and budgets for a pretrained 2B-7B VLM (Qwen2.5-VL-7B-Instruct on one 80 GB GPU).
 */
export function instructCycleConfig(out = 'medgr2-cycle'): CycleConfig {
  const d = defaultCycleConfig(out);
  return {
    ...d,
    generatorPrompt: 'metacognitive',
    // a reflection before the JSON needs room; the policy thinks before it answers
    generate: { perImage: 4, temperature: 0.7, topP: 0.95, batchSize: 256, maxNewTokens: 768, memoryBudgetMiB: 16384 },
    warmup: {
      ...d.warmup,
      generatorSteps: 0,
      judgeSteps: 0,
      factSwaps: 0,
      lr: 1e-5,
      judgeLr: 1e-5,
      describePool: false,
    },
    coDevelop: { ...d.coDevelop, generatorSteps: 100, judgeSteps: 100, lr: 1e-5 },
    policySft: { steps: 300, lr: 1e-5, tokenBudget: 16384 },
    grpo: { steps: 200, lr: 1e-6, groupSize: 8, promptsPerStep: 8, temperature: 1.0, selfConsistency: false },
    eval: { maxNewTokens: 512 },
    tokenBudget: 16384,
  };
}

/** Settings that must be whole numbers (the rest of the numeric ones may be fractions). */
const WHOLE_NUMBERS = new Set([
  'rank',
  'rounds',
  'overlongBuffer',
  'maxSkippedSteps',
  'seed',
  'seedImages',
  'poolImages',
  'testImages',
  'images',
  'steps',
  'perImage',
  'batchSize',
  'maxNewTokens',
  'topK',
  'generatorSteps',
  'judgeSteps',
  'factSwaps',
  'groupSize',
  'promptsPerStep',
  'tokenBudget',
  'minPixels',
  'maxPixels',
]);
export const CYCLE_DTYPES = ['float32', 'bfloat16', 'float16'] as const;
export const JUDGE_DATA = ['kept', 'confident'] as const;
export const REWARD_MODELS = ['generative', 'graded'] as const;

/** Settings that take one of a few names, by dotted key. */
const CHOICES: Record<string, readonly string[]> = {
  dtype: CYCLE_DTYPES,
  generatorPrompt: GENERATOR_PROMPT_STYLES,
  answerFormat: ANSWER_FORMATS,
  'grpo.kl': ['k1', 'k2', 'k3'],
  'grpo.lossType': ['grpo', 'bnpo', 'dr_grpo', 'dapo'],
  'grpo.oldLogp': ['rollout', 'recompute'],
  'grpo.importanceSamplingLevel': ['token', 'sequence'],
  'grpo.policyLoss': ['clip', 'cispo'],
  'grpo.reward': GRPO_REWARDS,
  'coDevelop.judgeData': JUDGE_DATA,
  rewardModel: REWARD_MODELS,
};
/** Settings without a default value (absent unless given), by dotted key. */
const OPTIONAL: Record<string, 'string' | 'number' | 'boolean' | 'strings' | 'group' | 'cards'> = {
  device: 'string',
  dtype: 'string',
  seedData: 'string',
  pool: 'string',
  model: 'string',
  generatorPrompt: 'string',
  answerFormat: 'string',
  minPixels: 'number',
  maxPixels: 'number',
  'generate.memoryBudgetMiB': 'number',
  'generate.groundAnswers': 'boolean',
  'generate.taskCards': 'cards',
  'warmup.describePool': 'boolean',
  'select.threshold': 'number',
  'select.topK': 'number',
  'select.floor': 'number',
  // the GRPO stage's trainer options beyond the defaults above (src/train/grpo_options.ts)
  'grpo.beta': 'number',
  'grpo.kl': 'string',
  'grpo.lossType': 'string',
  'grpo.epsLow': 'number',
  'grpo.epsHigh': 'number',
  'grpo.oldLogp': 'string',
  'grpo.importanceSamplingLevel': 'string',
  'grpo.delta': 'number',
  'grpo.policyLoss': 'string',
  'grpo.maskTruncatedCompletions': 'boolean',
  'grpo.overlongBuffer': 'number',
  'grpo.overlongPenaltyFactor': 'number',
  'grpo.klInReward': 'number',
  'grpo.entropyCoef': 'number',
  'grpo.entropyTopQuantile': 'number',
  'grpo.tisCap': 'number',
  'grpo.maxSkippedSteps': 'number',
  'grpo.reward': 'string',
  'coDevelop.judgeData': 'string',
  rewardModel: 'string',
  'grpo.rewardModelWeight': 'number',
  'grpo.exactMatchWeight': 'number',
  lora: 'group',
  'lora.rank': 'number',
  'lora.alpha': 'number',
  'lora.dropout': 'number',
  'lora.targets': 'strings',
  'lora.vision': 'boolean',
  'lora.merger': 'boolean',
  'lora.rsLora': 'boolean',
};

/** camelCase of a camelCase, kebab-case or snake_case key (as the sft/grpo config files allow). */
function camel(key: string): string {
  return key.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkedLeaf(kind: string, key: string, name: string, value: unknown, where: string): unknown {
  const fail = (what: string): never => {
    throw new Error(`${where}: key "${name}" ${what}, got ${JSON.stringify(value)}`);
  };
  switch (kind) {
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) fail('expects a number');
      if ((value as number) < 0) fail('must be >= 0');
      if (WHOLE_NUMBERS.has(key) && !Number.isInteger(value)) fail('expects a whole number');
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') fail('expects true or false');
      return value;
    case 'string':
      if (typeof value !== 'string') fail('expects a string');
      if (CHOICES[name] && !CHOICES[name].includes(value as string)) fail(`expects one of ${CHOICES[name].join(', ')}`);
      return value;
    case 'strings':
      if (!Array.isArray(value) || !value.every((x) => typeof x === 'string')) fail('expects a list of strings');
      return [...(value as string[])];
    case 'cards':
      if (!Array.isArray(value)) fail('expects a list of task cards ({"task", "question", "options"})');
      return (value as unknown[]).map((c, i) => checkTaskCard(c, where, `${name}[${i}]`));
    default:
      throw new Error(`internal: no checker for ${kind}`);
  }
}

function kindOf(v: unknown, name: string): string {
  if (OPTIONAL[name] === 'cards') return 'cards';
  if (Array.isArray(v)) return 'strings';
  return isMapping(v) ? 'group' : typeof v;
}

function mergeGroup(
  base: Record<string, unknown>,
  over: unknown,
  prefix: string,
  where: string,
): Record<string, unknown> {
  if (!isMapping(over))
    throw new Error(
      `${where}: ${prefix ? `key "${prefix}" expects a group of settings` : 'a config must hold one mapping of settings'}, got ${JSON.stringify(over)}`,
    );
  const out: Record<string, unknown> = { ...base };
  const seen = new Set<string>();
  for (const [rawKey, value] of Object.entries(over)) {
    const key = camel(rawKey);
    const name = prefix ? `${prefix}.${key}` : key;
    if (seen.has(key)) throw new Error(`${where}: key "${name}" is set twice`);
    seen.add(key);
    const kind = key in base ? kindOf(base[key], name) : OPTIONAL[name];
    if (kind === undefined) {
      const known = [
        ...Object.keys(base),
        ...Object.keys(OPTIONAL)
          .filter(
            (k) => k.startsWith(prefix ? `${prefix}.` : '') && !k.slice(prefix ? prefix.length + 1 : 0).includes('.'),
          )
          .map((k) => k.split('.').pop()!),
      ];
      throw new Error(
        `${where}: unknown key "${name}" (known${prefix ? ` in "${prefix}"` : ''}: ${[...new Set(known)].join(', ')})`,
      );
    }
    out[key] =
      kind === 'group'
        ? mergeGroup((base[key] ?? {}) as Record<string, unknown>, value, name, where)
        : checkedLeaf(kind, key, name, value, where);
  }
  return out;
}

/**
 * `override` (a parsed JSON/YAML document) merged into `base` group by group: a partial group changes
 * only the settings it names (`{"grpo": {"steps": 10}}` keeps every other GRPO setting). Keys may be
 * camelCase, kebab-case or snake_case. An unknown key or a wrong type throws, naming `where` and the key.
 */
export function mergeCycleConfig(base: CycleConfig, override: unknown, where: string): CycleConfig {
  return mergeGroup(base as unknown as Record<string, unknown>, override, '', where) as unknown as CycleConfig;
}
