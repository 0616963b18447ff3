// `medgr2 cycle`: the MedGR² self-improving cycle (docs/ARCHITECTURE.md), as resumable stages.
//
// Before round 1 (once): the world (a MedSynth world unless --seed-data/--pool are given), the initial
// model (with no --model: the random tiny model, then `pretrain` on noisy captions over all eight
// modalities, the stand-in for a pretrained VLM), `describe-pool` (the pretrained weights describe
// every pool image: the generator's view of what it shows, describe.ts), the warm start of the
// generator and the judge on the seed (the paper starts both roles from a pretrained VLM; the tiny
// model must first learn the two formats), and the baselines: the pretrained policy before any
// fine-tuning (`base`) and SFT on the seed alone (`sftSeed`).
// With --model (the instruct recipe, recipe.ts) there is no pretrain, and describe-pool and the two
// warm-ups run only when the config asks (config.ts warmup): generator and judge of round 1 are then
// the initial weights themselves (models/init, no copy).
// Each round r: generate (G_r) → score (R_r) → select → judge-eval (R_r on held-out labelled pairs)
// → co-develop G_{r+1} (SFT on the selected samples) and R_{r+1} (SFT on seed positives, constructed
// negatives and the round's confident judgments) → policy SFT on seed + everything selected so far →
// policy GRPO on it → evaluation on the three test sets.
//
// Every stage writes its outputs atomically (record files, JSON, model folders renamed into place),
// then a RunManifest (OUT/manifests/<stage>.rec) that says SUCCEEDED. --resume skips the stages whose
// manifest says so and redoes the one that was running, so no record is written twice or lost.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readModelSettings, type ModelSettings } from '../model/folder_settings';
import { loadSampleFile } from '../data/sample_files';
import { synthesize } from '../data/medsynth/world';
import { MODALITIES, TASKS } from '../data/medsynth/vocab';
import type { Candidate, RunManifest, Sample, ScoredCandidate } from '../data/proto';
import { readMessageFile, writeMessageFileAtomic, writeSamples, readSamples } from '../data/record_files';
import { DEFAULT_TOKENIZER_DIR, TextTokenizer } from '../data/tokenizer';
import { copyModelFolder } from '../model/hf_folder';
import { Model, type ModelDevice, type ModelDtype } from '../model/model';
import { tinyConfig } from '../model/tiny';
import { resolveLoraSpec, type LoraSpec } from '../model/lora';
import { applyAdapter, loadAdapter, saveAdapter } from '../model/peft_adapter';
import { assertFiniteWeights } from '../model/finite_weights';
import { packageVersion } from '../version';
import { generateCandidates, optionVocabulary, readPool, seedCopyKey, type PoolImage } from './generator';
import { cardCandidates, cardCounts, checkCardTasks, writtenByCard, type CardCounts } from './task_cards';
import { CAPTION_PROMPT, captionExamples, describeImages, factSwaps, withDescriptions } from './describe';
import { judgeRewards, scoreCandidates, type JudgeOptions } from './judge';
import { exactMatchTerm, rewardModelTerm } from './judge_reward';
import { gradedPairs } from './graded_pairs';
import { trainRewardModel } from '../train/reward_model';
import { accuracyAt, auc } from '../eval/auc';
import { confidentPairs, constructPairs, judgeExampleWith, type LabelledPair } from './negatives';
import { contradictedCandidates, selectCandidates, selectionSummary } from './select';
import { groundedCount } from './grounding';
import type { ScoreResult } from '../eval/scorer';
import { evaluatePolicy } from '../eval/evaluate';
import { trainGrpo } from '../train/grpo_trainer';

import { answerReward, formatReward, type Reward } from '../train/rewards';
import { trainSft, type SftExample } from '../train/sft';
import { useLoraAdapter } from '../train/lora_training';
import { replaceDirAtomic, writeJsonAtomicSync } from '../util/atomic_write';
import { encodeConversation, type ImageOptions } from '../model/encode';
import { recipeOf, type CycleConfig } from './config';
import { CyclePaths } from './paths';
import { CycleRanks } from './ranks';
import {
  cycleRecipe,
  describedFact,
  instructImageOptions,
  medsynthGeneratorExample,
  POLICY_STYLE,
  type CycleRecipe,
} from './recipe';
import { describeGenerationSizing, forwardBatch, generationBatch, imageTokenBound, kvBytesPerToken } from './sizing';
import { selectionPrecision, type SelectionPrecision } from './selection_precision';

export type StageName = string;

/** f of each item, made as it is read (prompt texts only the instruct recipe reads, and reads once). */
function* lazyMap<T>(items: Iterable<T>, f: (x: T) => string): Generator<string> {
  for (const x of items) yield f(x);
}

export interface CycleHooks {
  /** Called as a stage starts (after its RUNNING manifest); throwing fails the stage (tests simulate a kill). */
  beforeStage?: (stage: StageName, round: number) => void | Promise<void>;
  log?: (line: string) => void;
  /** Progress inside a stage: (stage, done, total). */
  progress?: (stage: StageName, done: number, total: number) => void;
}

export interface TestSets {
  inDomain: Sample[];
  heldOutModality: Sample[];
  heldOutTask: Sample[];
}

export type ArmName = 'base' | 'sftSeed' | 'sftCycle' | 'grpoCycle';
export const TEST_SETS = ['inDomain', 'heldOutModality', 'heldOutTask'] as const;
export type TestSetName = (typeof TEST_SETS)[number];

/** What eval stages write: accuracy per test set, with modality/task breakdowns. */
export interface EvalRecord {
  arm: string;
  round: number;
  sets: Partial<Record<TestSetName, ScoreResult>>;
}

export interface RoundRecord {
  round: number;
  candidates: number;
  valid: number;
  kept: number;
  /** Valid candidates answered with their description's fact instead of the generator's answer
   *  (grounding.ts); absent in round records written before it existed. */
  grounded?: number;
  /** The candidates the task cards wrote (task_cards.ts); absent without cards. */
  taskCards?: CardCounts;
  rewards: number[];
  rewardsValid: number[];
  /** Rewards of the kept candidates (all valid): the report's histogram colours kept vs dropped.
   *  Absent in round records written before it existed. */
  rewardsKept?: number[];
  judge: { accuracy: number; auc: number; pairs: number };
  invalidReasons: Record<string, number>;
  generatorSteps: number;
  judgeSteps: number;
  policySftLoss: number[];
  grpoMeanReward: number[];
  /**
   * Selection precision, measured only (never used to select): of the valid candidates whose task has a
   * ground truth in the MedSynth world's truth.jsonl, how many kept / dropped ones name the right answer.
   * Absent for a run on other data.
   */
  selectionPrecision?: SelectionPrecision;
}

export function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/** A model folder must hold its tokenizer: every role encodes text with it. */
export function checkModelDir(dir: string): void {
  if (!fs.existsSync(path.join(dir, 'config.json'))) throw new Error(`${dir}: not a model folder (no config.json)`);
  if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) {
    throw new Error(
      `${dir}: the model folder has no tokenizer.json (every role encodes text with the model's own tokenizer; copy it from the model's source)`,
    );
  }
}

/** A role's model folder: the model, its tokenizer, and its image processor and generation settings
 *  (preprocessor_config.json, generation_config.json; src/model/folder_settings.ts). */
export async function loadRole(
  dir: string,
  opts: { device?: string; dtype?: ModelDtype } = {},
): Promise<{ model: Model; tok: TextTokenizer } & ModelSettings> {
  checkModelDir(dir);
  const tok = TextTokenizer.load(dir);
  const model = await Model.load(dir, { device: (opts.device ?? 'cpu') as ModelDevice, dtype: opts.dtype });
  try {
    return { model, tok, ...readModelSettings(dir, model.config.vision) };
  } catch (e) {
    await model.dispose();
    throw e;
  }
}

/** Saves into a fresh folder, then renames it into place: a model folder is there whole or not at all. */
async function saveModelAtomic(model: Model, dir: string): Promise<void> {
  await assertFiniteWeights(model, dir); // names the folder, not the temp one model.save would
  await replaceDirAtomic(dir, (tmp) => model.save(tmp, { sourceDir: model.sourceDir ?? DEFAULT_TOKENIZER_DIR }));
}

function absImages(samples: Sample[], file: string): Sample[] {
  const root = path.dirname(path.resolve(file));
  return samples.map((s) => ({ ...s, images: s.images.map((p) => (path.isAbsolute(p) ? p : path.join(root, p))) }));
}

/** Seed samples must be labelled: options and an answer among them. */
export function loadSeed(file: string): Sample[] {
  let samples: Sample[];
  try {
    samples = loadSampleFile(file);
  } catch (e) {
    throw new Error(`--seed-data: ${(e as Error).message} (the seed must be labelled multiple-choice samples)`);
  }
  const unlabelled = samples.filter((s) => !s.answer || s.options.length < 2 || !s.options.includes(s.answer));
  if (unlabelled.length > 0) {
    throw new Error(
      `--seed-data ${file}: ${unlabelled.length} of ${samples.length} sample(s) have no answer among their options (first: '${unlabelled[0].id}'); the seed must be labelled`,
    );
  }
  return absImages(samples, file);
}

// ---- the run ----

/** A model of the run while a stage uses it (Cycle.loadModel); release() when done. */
interface RoleLease {
  model: Model;
  tok: TextTokenizer;
  release: () => Promise<void>;
}

export interface CycleResult {
  out: string;
  rounds: RoundRecord[];
  evals: EvalRecord[];
  seconds: number;
}

export class Cycle {
  readonly p: CyclePaths;
  readonly ranks: CycleRanks;
  private log: (line: string) => void;
  /** The instruct recipe (--model): see recipe.ts and the stage graph in run(). */
  private readonly instruct: boolean;
  /** Set once the seed is known (after the world stage). */
  private recipeOrUndefined?: CycleRecipe;
  /** Batch-size lines already logged (each once per run). */
  private readonly sizesLogged = new Set<string>();
  /** LoRA (config lora, rank > 0): every training stage after the base trains an adapter. */
  private readonly lora?: LoraSpec;
  /** With LoRA: models/init, loaded once (loadModel); close() frees it. */
  private sharedBase?: Promise<{ model: Model; tok: TextTokenizer }>;

  /** Whether independent stages may run side by side (lanes). */
  private readonly parallelLanes: boolean;

  /** `ranks`: the run's ranks (ranks.ts); absent, one process. Rank 0 alone logs. `opts.parallelLanes`:
   *  run independent stages side by side where that is safe (lanes). */
  constructor(
    readonly cfg: CycleConfig,
    readonly hooks: CycleHooks = {},
    ranks?: CycleRanks,
    opts: { parallelLanes?: boolean } = {},
  ) {
    this.parallelLanes = opts.parallelLanes ?? false;
    this.p = new CyclePaths(cfg.out);
    this.ranks = ranks ?? new CycleRanks(undefined, 0, '');
    const log = hooks.log ?? ((l: string) => void process.stderr.write(l + '\n'));
    this.log = this.ranks.isMain ? log : () => {};
    this.instruct = recipeOf(cfg) === 'instruct';
    // alpha defaults to 2 x rank, as the CLI's --lora-alpha does
    this.lora = cfg.lora?.rank ? resolveLoraSpec({ alpha: 2 * cfg.lora.rank, ...cfg.lora }, 'config lora') : undefined;
  }

  /** Where the roles run and in which dtype (--device, --dtype). */
  private get placement(): { device: ModelDevice; dtype?: ModelDtype } {
    return { device: (this.cfg.device ?? 'cpu') as ModelDevice, dtype: this.cfg.dtype };
  }

  /** What selection reads in a rationale (the recipe's), for the selections made outside a round (the study's). */
  get statedFact(): CycleRecipe['statedFact'] {
    return this.recipe.statedFact;
  }

  private get recipe(): CycleRecipe {
    if (!this.recipeOrUndefined) throw new Error('internal: the recipe is set after the world stage');
    return this.recipeOrUndefined;
  }

  /** Instruct recipe without a generator / judge warm-up: round 1's generator / judge is models/init. */
  private modelDir(name: string): string {
    const { cfg } = this;
    if (this.instruct && name === 'generator-1' && !(cfg.warmup.generatorSteps > 0)) return this.p.model('init');
    if (this.instruct && name === 'judge-1' && !(cfg.warmup.judgeSteps > 0)) return this.p.model('init');
    return this.p.model(name);
  }

  /**
   * A model of the run by name (modelDir), to use until `release()`. Without LoRA, loaded from its
   * folder (release frees it). With LoRA every model after the base (models/init) is an adapter
   * folder: the base is loaded once and shared, and a lease puts that model's adapter on it (none
   * for init) with a fresh optimizer; release keeps the base. `separate`: a base of its own instead
   * (a judge scoring rollouts while the policy's adapter trains on the shared one).
   */
  private async loadModel(name: string, opts: { separate?: boolean } = {}): Promise<RoleLease> {
    const dir = this.modelDir(name);
    if (!this.lora || dir === this.p.model('random')) {
      const { model, tok } = await loadRole(dir, this.placement);
      return { model, tok, release: () => model.dispose() };
    }
    const own = opts.separate ? await loadRole(this.p.model('init'), this.placement) : undefined;
    const base = own ?? (await (this.sharedBase ??= loadRole(this.p.model('init'), this.placement)));
    try {
      base.model.removeLora();
      base.model.shardOptimizer(null); // a fresh optimizer: the last stage's moments belong to another adapter
      if (dir !== this.p.model('init')) await applyAdapter(base.model, await loadAdapter(dir, base.model.config));
    } catch (e) {
      if (own) await own.model.dispose();
      throw new Error(`${dir}: ${(e as Error).message}`);
    }
    return { model: base.model, tok: base.tok, release: own ? () => own.model.dispose() : async () => {} };
  }

  /** The LoRA spec a stage training models/<from> uses: none without LoRA, or when it trains the
   *  random model into the base (pretraining is always whole). */
  private loraFor(from: string): LoraSpec | undefined {
    return this.lora && this.modelDir(from) !== this.p.model('random') ? this.lora : undefined;
  }

  /** Frees the shared base model of a LoRA run (the cycle's models are all released by then). */
  async close(): Promise<void> {
    const base = this.sharedBase;
    this.sharedBase = undefined;
    if (base) await (await base).model.dispose();
  }

  private logSizes(key: string, line: string): void {
    if (this.sizesLogged.has(key)) return;
    this.sizesLogged.add(key);
    this.log(`[cycle] batch size, ${line}`);
  }

  /** Most tokens of the prompts: the longest text (by characters) encoded, plus every image at max_pixels. */
  private promptTokens(tok: TextTokenizer, texts: Iterable<string>, system?: string, images = 1): number {
    let longest = '';
    for (const t of texts) if (t.length > longest.length) longest = t;
    const text = encodeConversation(tok, [], longest, system === undefined ? {} : { system }).ids.length;
    return text + images * imageTokenBound(this.recipe.images);
  }

  /**
   * Sequences per generate call: the default recipe's fixed number, or (instruct) as many as the
   * memory budget's KV cache holds for prompts up to promptTokens(texts) and maxNewTokens new tokens.
   */
  private generationBatch(
    what: string,
    model: Model,
    tok: TextTokenizer,
    texts: Iterable<string>,
    maxNewTokens: number,
    fixed: number,
    system?: string,
  ): number {
    if (!this.instruct) return fixed;
    const budget = this.cfg.generate.memoryBudgetMiB ?? 16384;
    const sizing = generationBatch({
      memoryBudgetMiB: budget,
      bytesPerToken: kvBytesPerToken(model.config.text, model.info.dtype),
      promptTokens: this.promptTokens(tok, texts, system),
      maxNewTokens,
      cap: this.cfg.generate.batchSize,
    });
    this.logSizes(what, `${what}: ${describeGenerationSizing(sizing, budget)}`);
    return sizing.batch;
  }

  /** The judge's prompt, readout, image settings and batch in the instruct recipe; in the default one only
   *  the readout of the graded reward model (its score head) when the run uses it. */
  private judgeOptions(
    tok: TextTokenizer,
    samples: readonly Parameters<CycleRecipe['judgePrompt']>[0][],
  ): Partial<Pick<JudgeOptions, 'prompt' | 'readout' | 'batchSize' | 'minPixels' | 'maxPixels' | 'patch'>> {
    const graded = this.cfg.rewardModel === 'graded';
    if (!this.instruct) return graded ? { readout: 'head' } : {};
    return {
      ...this.recipe.images,
      prompt: this.recipe.judgePrompt,
      readout: graded ? 'head' : this.recipe.judgeReadout,
      batchSize: this.judgeBatch(tok, samples),
    };
  }

  /** Prompts per judge forward pass: 32 in the default recipe; (instruct) as many as tokenBudget holds. */
  private judgeBatch(
    tok: TextTokenizer,
    samples: readonly Parameters<CycleRecipe['judgePrompt']>[0][],
  ): number | undefined {
    if (!this.instruct || samples.length === 0) return undefined;
    const promptTokens = this.promptTokens(
      tok,
      lazyMap(samples, (s) => this.recipe.judgePrompt(s)),
    );
    const batch = forwardBatch({ tokenBudget: this.cfg.tokenBudget, promptTokens, cap: 256 });
    this.logSizes(
      'judge',
      `judge: ${batch} prompts per forward pass (prompt <= ${promptTokens} tokens; token budget ${this.cfg.tokenBudget})`,
    );
    return batch;
  }

  private manifestDone(stage: string, round: number): boolean {
    const f = this.p.manifest(stage, round);
    if (!fs.existsSync(f)) return false;
    const m = readMessageFile<RunManifest>(f, { expect: 'medgr2.RunManifest' }).messages;
    return m.length > 0 && m[m.length - 1].status === 'SUCCEEDED';
  }

  private writeManifest(stage: string, round: number, m: Partial<RunManifest>): void {
    const f = this.p.manifest(stage, round);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    writeMessageFileAtomic(f, 'medgr2.RunManifest', [
      {
        stage,
        round,
        version: packageVersion,
        configJson: JSON.stringify(this.cfg),
        inputs: [],
        outputs: [],
        startedAt: 0,
        finishedAt: 0,
        status: 'RUNNING',
        error: '',
        ...m,
      },
    ]);
  }

  /**
   * Runs `fn` unless the stage already finished; records RUNNING, then SUCCEEDED or FAILED. On several
   * ranks every rank runs `fn` (who 'all': it splits its own work) or rank 0 alone does ('main'); the
   * ranks agree on whether the stage is done and meet when it ends, and rank 0 writes the manifests.
   */
  private async stage(
    stage: string,
    round: number,
    io: { inputs?: string[]; outputs: string[] },
    fn: () => Promise<unknown>,
    who: 'all' | 'main' = 'all',
  ): Promise<void> {
    const label = round ? `round ${round} ${stage}` : stage;
    const main = this.ranks.isMain;
    if (await this.ranks.all(this.manifestDone(stage, round))) {
      this.log(`[cycle] ${label}: finished earlier, kept`);
      return;
    }
    const startedAt = Date.now() / 1000;
    const base = { inputs: io.inputs ?? [], outputs: io.outputs, startedAt };
    if (main) this.writeManifest(stage, round, { ...base, status: 'RUNNING' });
    const t0 = Date.now();
    try {
      await this.hooks.beforeStage?.(stage, round);
      if (who === 'all' || main) await fn();
      await this.ranks.barrier(); // every rank's part done, rank 0's files written
    } catch (e) {
      if (main)
        this.writeManifest(stage, round, {
          ...base,
          status: 'FAILED',
          error: (e as Error).message,
          finishedAt: Date.now() / 1000,
        });
      throw e;
    }
    if (main) this.writeManifest(stage, round, { ...base, status: 'SUCCEEDED', finishedAt: Date.now() / 1000 });
    this.log(`[cycle] ${label}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  /** Whether this chain runs independent stages side by side (lanes): asked for, and safe and small. */
  get sideBySide(): boolean {
    return (
      this.parallelLanes &&
      !this.instruct &&
      !this.lora &&
      this.ranks.worldSize === 1 &&
      (this.cfg.device ?? 'cpu') === 'cpu'
    );
  }

  /**
   * Runs independent parts of the run: side by side where that is safe and small (the tiny model on
   * the CPU, one rank, no LoRA, whose shared base two stages cannot use at once), else one after the
   * other. Every stage loads its own model and seeds its own draws, so the numbers are the same either
   * way (test/cycle/run.test.ts); with one intra-op thread a 2-core machine runs two stages at once.
   * Both lanes end before an error of either is thrown, so no stage is left running.
   */
  private async lanes(...lanes: (() => Promise<void>)[]): Promise<void> {
    if (!this.sideBySide) {
      for (const lane of lanes) await lane();
      return;
    }
    const settled = await Promise.allSettled(lanes.map((lane) => lane()));
    const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Rank 0 saves the model folder (every rank holds the same weights); with LoRA, a model trained
   *  from the base is saved as its adapter folder (PEFT's format, base models/init). */
  private async saveModel(model: Model, name: string): Promise<void> {
    if (!this.ranks.isMain) return;
    const dir = this.p.model(name);
    if (!model.hasLora) return saveModelAtomic(model, dir);
    await assertFiniteWeights(model, dir);
    const init = this.p.model('init');
    await replaceDirAtomic(dir, (tmp) =>
      saveAdapter(model, tmp, { spec: model.loraSpec, baseModel: path.resolve(init), sourceDir: init }),
    );
  }

  /** Rank 0 writes the JSON file. */
  private writeJson(file: string, value: unknown): void {
    if (this.ranks.isMain) writeJsonAtomicSync(file, value);
  }

  private progress(stage: string) {
    return (done: number, total: number) => this.reportProgress(stage, done, total);
  }

  /** Rank 0 alone reports progress. */
  private reportProgress(stage: string, done: number, total: number): void {
    if (this.ranks.isMain) this.hooks.progress?.(stage, done, total);
  }

  async run(): Promise<CycleResult> {
    const t0 = Date.now();
    const { cfg, p } = this;
    this.checkStart();
    fs.mkdirSync(cfg.out, { recursive: true });
    this.writeJson(p.config, cfg);

    await this.stage(
      'world',
      0,
      { outputs: [p.seed, p.poolFile, ...TEST_SETS.map((s) => p.test(s))] },
      () => this.makeWorld(),
      'main',
    );
    const seed = readSamples(p.seed).messages;
    const tests = this.readTests();
    const pool = readJson<PoolImage[]>(p.poolFile);
    this.recipeOrUndefined = cycleRecipe(cfg, seed);
    for (const c of cfg.generate.taskCards ?? [])
      if (!this.recipe.taskCards.includes(c))
        this.log(`[cycle] the seed asks ${c.task} itself: its task card is not used`);
    if (this.instruct) {
      const r = this.recipe;
      this.log(
        `[cycle] instruct recipe: generator prompt ${r.generatorStyle}, policy answers with the option's ${r.answerFormat}, images ${r.images.minPixels}-${r.images.maxPixels} pixels; warm-ups: ${this.instructWarmups().join(', ') || 'none'}`,
      );
    }

    await this.stage(
      'init',
      0,
      { outputs: [p.model(cfg.model ? 'init' : 'random')] },
      () => this.makeInitialModel(),
      'main',
    );
    if (!cfg.model) {
      await this.stage('pretrain', 0, { inputs: [p.model('random'), p.captions], outputs: [p.model('init')] }, () =>
        this.sft('random', 'init', captionExamples(p.captions), cfg.pretrain.steps, cfg.pretrain.lr, 'pretrain'),
      );
    }
    const describe = !this.instruct || cfg.warmup.describePool === true;
    if (describe)
      await this.stage('describe-pool', 0, { inputs: [p.model('init'), p.poolFile], outputs: [p.describedPool] }, () =>
        this.describePool(pool),
      );
    const described = describe ? readJson<PoolImage[]>(p.describedPool) : pool;
    // The generator's warm-up and the seed policy -> judge warm-up need only the pretrained weights and
    // the seed: two lanes (this.lanes).
    await this.lanes(
      async () => {
        if (!this.instruct || cfg.warmup.generatorSteps > 0)
          await this.stage(
            'warmup-generator',
            0,
            { inputs: [p.seed, p.model('init')], outputs: [p.model('generator-1')] },
            () =>
              this.sft(
                'init',
                'generator-1',
                this.generatorWarmupExamples(seed),
                cfg.warmup.generatorSteps,
                cfg.warmup.lr,
                'warmup-generator',
              ),
          );
      },
      async () => {
        await this.stage('eval-base', 0, { outputs: [p.evalJson('base', 0)] }, () =>
          this.evaluate('init', 'base', 0, tests),
        );
        await this.stage('sft-seed', 0, { inputs: [p.seed], outputs: [p.model('policy-sft-seed')] }, () =>
          this.sft(
            'init',
            'policy-sft-seed',
            this.recipe.policyExamples(seed),
            cfg.policySft.steps,
            cfg.policySft.lr,
            'sft-seed',
            cfg.policySft.tokenBudget,
          ),
        );
        await this.stage('eval-sft-seed', 0, { outputs: [p.evalJson('sftSeed', 0)] }, () =>
          this.evaluate('policy-sft-seed', 'sftSeed', 0, tests),
        );
        // The judge starts from the seed policy, not from the initial weights: judging "is this answer right
        // for this image" needs the image -> answer features the policy has just learned; from random
        // weights the tiny judge's Yes/No loss sits at ln 2 through the whole warm-up.
        // With --model the judge warms up (when asked) from the pretrained weights, as the paper starts it.
        const judgeFrom = this.instruct ? 'init' : 'policy-sft-seed';
        if (!this.instruct || cfg.warmup.judgeSteps > 0)
          await this.stage(
            'warmup-judge',
            0,
            { inputs: [p.seed, p.model(judgeFrom)], outputs: [p.model('judge-1')] },
            () =>
              this.trainJudge(
                judgeFrom,
                'judge-1',
                [{ samples: seed, seed: cfg.seed }],
                cfg.warmup.judgeSteps,
                cfg.warmup.judgeLr,
                'warmup-judge',
              ),
          );
      },
    );

    for (let r = 1; r <= cfg.rounds; r++) await this.round(r, seed, described, tests);

    const rounds = Array.from({ length: cfg.rounds }, (_, i) => readJson<RoundRecord>(p.roundJson(i + 1)));
    const evals: EvalRecord[] = [readJson(p.evalJson('base', 0)), readJson(p.evalJson('sftSeed', 0))];
    for (let r = 1; r <= cfg.rounds; r++)
      evals.push(readJson(p.evalJson('sftCycle', r)), readJson(p.evalJson('grpoCycle', r)));
    return { out: cfg.out, rounds, evals, seconds: (Date.now() - t0) / 1000 };
  }

  /** A fresh run refuses a folder that holds another run's stages; --resume requires the same config. */
  private checkStart(): void {
    const { cfg, p } = this;
    if (this.lora && cfg.rewardModel === 'graded')
      throw new Error(
        "config: rewardModel 'graded' does not train with LoRA yet (its new score head would have to train beside the adapter); use 'generative' or full fine-tuning",
      );
    if (cfg.rewardModel === 'graded' && cfg.coDevelop.judgeData === 'confident')
      throw new Error(
        "config: coDevelop.judgeData 'confident' (Yes/No labels from the judge's own judgments) needs rewardModel 'generative'",
      );
    if (this.instruct && cfg.generate.groundAnswers)
      throw new Error(
        "config: generate.groundAnswers reads MedSynth's caption phrasings (the default recipe); a --model run's descriptions are free prose",
      );
    if (this.instruct && cfg.generate.taskCards?.length)
      throw new Error(
        "config: generate.taskCards answer from MedSynth's caption phrasings (the default recipe); a --model run's generator can be asked for any task",
      );
    checkCardTasks(cfg.generate.taskCards ?? []);
    const started = fs.existsSync(path.join(cfg.out, 'manifests'));
    if (started && !cfg.resume)
      throw new Error(`${cfg.out}: holds an earlier run; pass --resume to continue it, or choose another --out`);
    if (started && fs.existsSync(p.config)) {
      const prior = readJson<CycleConfig>(p.config);
      const keys: (keyof CycleConfig)[] = [
        'seed',
        'world',
        'pretrain',
        'generate',
        'select',
        'seedData',
        'pool',
        'model',
        'generatorPrompt',
        'answerFormat',
        'minPixels',
        'maxPixels',
        'rewardFilter',
        'coEvolve',
        'rewardModel',
        'lora',
      ];
      for (const k of keys) {
        if (JSON.stringify(prior[k]) !== JSON.stringify(cfg[k]))
          throw new Error(
            `${cfg.out}: --resume with a different '${k}' than the run it continues (was ${JSON.stringify(prior[k])})`,
          );
      }
    }
  }

  private readTests(): TestSets {
    const read = (s: TestSetName) => (fs.existsSync(this.p.test(s)) ? readSamples(this.p.test(s)).messages : []);
    return { inDomain: read('inDomain'), heldOutModality: read('heldOutModality'), heldOutTask: read('heldOutTask') };
  }

  // ---- stages before round 1 ----

  private async makeWorld(): Promise<void> {
    const { cfg, p } = this;
    const w = cfg.world;
    let seed: Sample[];
    let pool: PoolImage[];
    let tests: TestSets;
    const inSeedScope = (s: Sample) => w.seedModalities.includes(s.modality) && w.seedTasks.includes(s.task);
    if (!cfg.seedData || !cfg.pool) {
      const bad = w.seedModalities.filter((m) => !(MODALITIES as readonly string[]).includes(m));
      if (bad.length)
        throw new Error(`world: unknown seed modalities ${bad.join(', ')} (MedSynth has ${MODALITIES.join(', ')})`);
      const badTask = [...w.seedTasks, w.heldOutTask].filter((t) => !(TASKS as readonly string[]).includes(t));
      if (badTask.length) throw new Error(`world: unknown tasks ${badTask.join(', ')}`);
      const trainDir = path.join(p.world, 'train');
      const testDir = path.join(p.world, 'test');
      this.log(
        `[cycle] world: MedSynth, seed ${w.seedImages} images (${w.seedModalities.join(', ')}), pool ${w.poolImages} (all 8 modalities), test ${w.testImages}`,
      );
      await synthesize({
        out: trainDir,
        count: w.seedImages,
        unlabelled: w.poolImages,
        seed: cfg.seed,
        modalities: w.seedModalities as never,
        progress: this.progress('world'),
      });
      await synthesize({ out: testDir, count: w.testImages, seed: cfg.seed + 1000, progress: this.progress('world') });
      if (!cfg.model && cfg.pretrain.steps > 0) {
        await synthesize({
          out: path.dirname(p.captions),
          count: 0,
          captioned: cfg.pretrain.images,
          captionNoise: cfg.pretrain.noise,
          seed: cfg.seed + 2000,
          progress: this.progress('world'),
        });
      }
      const train = absImages(
        loadSampleFile(path.join(trainDir, 'medsynth.jsonl')),
        path.join(trainDir, 'medsynth.jsonl'),
      );
      const test = absImages(
        loadSampleFile(path.join(testDir, 'medsynth.jsonl')),
        path.join(testDir, 'medsynth.jsonl'),
      );
      seed = train.filter(inSeedScope);
      pool = readPool(path.join(trainDir, 'pool.jsonl'));
      tests = {
        inDomain: test.filter(inSeedScope),
        heldOutModality: test.filter((s) => !w.seedModalities.includes(s.modality) && w.seedTasks.includes(s.task)),
        heldOutTask: test.filter((s) => w.seedModalities.includes(s.modality) && s.task === w.heldOutTask),
      };
    } else {
      seed = [];
      pool = [];
      tests = { inDomain: [], heldOutModality: [], heldOutTask: [] };
    }
    if (cfg.seedData) {
      const all = loadSeed(cfg.seedData);
      // a fifth of the given seed is held out as the in-domain test (every fifth sample, stable)
      seed = all.filter((_, i) => i % 5 !== 4);
      if (cfg.pool) tests = { inDomain: all.filter((_, i) => i % 5 === 4), heldOutModality: [], heldOutTask: [] };
    }
    if (cfg.pool) pool = readPool(cfg.pool);
    if (seed.length === 0) throw new Error('world: the seed is empty');
    // every pool image must be readable before anything trains on it (with the instruct recipe, at
    // the model's image settings)
    const { loadImages } = await import('../model/encode');
    const imageOptions: ImageOptions = this.instruct ? instructImageOptions(cfg) : {};
    for (const [i, img] of pool.entries()) {
      await loadImages([img.image], imageOptions).catch((e: Error) => {
        throw new Error(`pool: ${e.message}`);
      });
      if (this.instruct) this.reportProgress('world: pool images read', i + 1, pool.length);
    }
    seed = seed.map((s) => ({ ...s, provenance: { ...s.provenance, kind: 'SEED' as const } }));
    fs.mkdirSync(path.dirname(p.seed), { recursive: true });
    writeSamples(p.seed, seed);
    for (const s of TEST_SETS) writeSamples(p.test(s), tests[s]);
    writeJsonAtomicSync(p.poolFile, pool);
    writeJsonAtomicSync(
      p.judgePairs,
      constructPairs(tests.inDomain.length ? tests.inDomain : seed.slice(0, 64), { seed: cfg.seed + 7 }),
    );
  }

  /** The generator's warm-up data: every seed sample with its image's description, plus warmup.factSwaps
   *  fact-swapped copies of each (describe.ts). The instruct recipe's seed samples keep their own
   *  rationale (none: the reply has none) and the fact swaps only when asked. */
  private generatorWarmupExamples(seed: Sample[]): SftExample[] {
    const vocabulary = optionVocabulary(seed);
    const swapped = Array.from({ length: this.cfg.warmup.factSwaps }, (_, k) =>
      factSwaps(seed, vocabulary, this.cfg.seed * 7919 + k),
    );
    const originals = this.instruct ? seed : withDescriptions(seed);
    return [...originals, ...swapped.flat()].map((s) => this.recipe.generatorExample(s));
  }

  /** The warm-ups the instruct recipe runs (config.ts warmup: each only when asked). */
  private instructWarmups(): string[] {
    const w = this.cfg.warmup;
    const on: string[] = [];
    if (w.describePool === true) on.push('describe-pool');
    if (w.generatorSteps > 0) on.push(`generator ${w.generatorSteps} steps (${w.factSwaps} fact swaps)`);
    if (w.judgeSteps > 0) on.push(`judge ${w.judgeSteps} steps`);
    return on;
  }

  /** Every pool image described by the initial (pretrained) weights, which no later stage changes. */
  private async describePool(pool: PoolImage[]): Promise<void> {
    const { model, tok, release } = await this.loadModel('init');
    try {
      const maxNewTokens = 32;
      const batchSize = this.generationBatch('describe-pool', model, tok, [CAPTION_PROMPT], maxNewTokens, 64);
      const texts = await describeImages(
        model,
        tok,
        pool.map((x) => x.image),
        {
          progress: this.progress('describe-pool'),
          runBatches: this.ranks.runBatches,
          ...(this.instruct
            ? { ...this.recipe.images, batchSize, maxNewTokens, stopTokens: this.recipe.stopTokens(tok) }
            : {}),
        },
      );
      this.writeJson(
        this.p.describedPool,
        pool.map((x, i) => ({ ...x, description: texts[i] })),
      );
      this.log(`[cycle] describe-pool: ${pool.length} images, e.g. "${texts[0]}"`);
    } finally {
      await release();
    }
  }

  private async makeInitialModel(): Promise<void> {
    const { cfg, p } = this;
    if (cfg.model) {
      // Checked as a whole (config, every tensor's header, tokenizer, processor) by loading it on the
      // CPU (memory-mapped, nothing copied), then its files linked in: the run's models/init is the
      // user's folder unchanged, without writing a 7B model's 15 GB again.
      this.reportProgress('init (check, link the model folder)', 0, 2);
      const { model } = await loadRole(cfg.model);
      await model.dispose();
      this.reportProgress('init (check, link the model folder)', 1, 2);
      await replaceDirAtomic(p.model('init'), async (tmp) => {
        await copyModelFolder(cfg.model as string, tmp);
      });
      this.reportProgress('init (check, link the model folder)', 2, 2);
      return;
    }
    const model = await Model.create(tinyConfig('qwen2_vl'), { seed: cfg.seed, ...this.placement });
    try {
      await saveModelAtomic(model, p.model('random'));
    } finally {
      await model.dispose();
    }
  }

  /** Loads models/<from>, fine-tunes it on the examples, saves models/<to>. Returns the losses. */
  private async sft(
    from: string,
    to: string,
    examples: SftExample[],
    steps: number,
    lr: number,
    stage: string,
    tokenBudget = this.cfg.tokenBudget,
  ): Promise<number[]> {
    const { model, tok, release } = await this.loadModel(from);
    try {
      // With LoRA, even an untrained stage's output is an adapter (a fresh one changes nothing).
      const lora = this.loraFor(from);
      if (lora) useLoraAdapter(model, lora, this.cfg.seed);
      if (steps === 0 || examples.length === 0) {
        await this.saveModel(model, to);
        return [];
      }
      const r = await trainSft(
        model,
        examples,
        {
          lr,
          maxSteps: steps,
          tokenBudget,
          seed: this.cfg.seed,
          tokenizer: tok,
          imageOptions: this.recipe.images,
          progress: false,
          warmupSteps: Math.min(10, Math.ceil(steps / 10)),
          minLrRatio: 0.1,
          dist: this.ranks.dist,
          zero: this.ranks.zero,
          lora,
        },
        {
          onStep: (i) => this.reportProgress(`${stage} (loss ${i.loss.toFixed(3)})`, i.step, i.totalSteps),
        },
      );
      const losses = r.history.map((h) => h.loss);
      await this.saveModel(model, to);
      this.writeJson(this.p.log(to), { losses });
      const n = losses.length;
      const head = losses.slice(0, 5);
      const tail = losses.slice(-5);
      const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
      this.log(`[cycle] ${stage}: ${n} steps, loss ${mean(head).toFixed(3)} -> ${mean(tail).toFixed(3)}`);
      return losses;
    } finally {
      await release();
    }
  }

  private async evaluate(modelName: string, arm: string, round: number, tests: TestSets): Promise<void> {
    const { model, tok, release } = await this.loadModel(modelName);
    const { recipe } = this;
    try {
      const rec: EvalRecord = { arm, round, sets: {} };
      const all = TEST_SETS.flatMap((s) => tests[s]);
      const batchSize = this.generationBatch(
        'eval',
        model,
        tok,
        lazyMap(all, (x) => recipe.policyPrompt(x)),
        this.cfg.eval.maxNewTokens,
        64,
        recipe.policySystem,
      );
      for (const s of TEST_SETS) {
        if (tests[s].length === 0) continue;
        const label = `eval ${arm}${round ? ` (round ${round})` : ''} ${s}`;
        this.reportProgress(label, 0, tests[s].length);
        rec.sets[s] = (
          await evaluatePolicy(model, tests[s], {
            style: POLICY_STYLE,
            maxNewTokens: this.cfg.eval.maxNewTokens,
            tokenizer: tok,
            batchSize,
            runBatches: this.ranks.runBatches,
            onProgress: this.progress(label),
            ...(this.instruct
              ? {
                  prompt: recipe.policyPrompt,
                  system: recipe.policySystem,
                  stopTokens: recipe.stopTokens(tok),
                  imageOptions: recipe.images,
                }
              : {}),
          })
        ).score;
      }
      this.writeJson(this.p.evalJson(arm, round), rec);
      this.log(
        `[cycle] eval ${arm}${round ? ` (round ${round})` : ''}: ${TEST_SETS.map((s) => `${s} ${rec.sets[s] ? (100 * rec.sets[s]!.overall.accuracy).toFixed(1) + '%' : '-'}`).join(', ')}`,
      );
    } finally {
      await release();
    }
  }

  /**
   * The GRPO stage's reward terms (config grpo.reward): the verifiable answer + format, or the paper's
   * reward-model mix with the round's judge loaded beside the policy (`dispose` frees it).
   */
  private async grpoRewards(
    judge: string,
    label: string,
  ): Promise<{ rewards: Reward[]; dispose: () => Promise<void> }> {
    const g = this.cfg.grpo;
    if (g.reward !== 'reward-model')
      return { rewards: [answerReward(1), formatReward(POLICY_STYLE, 0.1)], dispose: async () => {} };
    const { model, tok, release } = await this.loadModel(judge, { separate: true });
    const rewards = [
      rewardModelTerm(model, tok, g.rewardModelWeight ?? 0.8, this.judgeOptions(tok, [])),
      exactMatchTerm(g.exactMatchWeight ?? 0.2),
      formatReward(POLICY_STYLE, 0.1),
    ];
    this.log(
      `[cycle] ${label} grpo reward: ${rewards.map((x) => `${x.weight} x ${x.name}`).join(' + ')} (reward model ${this.modelDir(judge)})`,
    );
    return { rewards, dispose: release };
  }

  /**
   * GRPO of models/<from> on the keyed samples and the unlabelled ones (self-consistency), rewarded as
   * config grpo.reward says (judge: the reward model's name), saved as models/<to>. `seedOffset` varies
   * the draws between rounds (cfg.seed + seedOffset); `label` names the stage in logs.
   */
  private async policyGrpo(
    from: string,
    to: string,
    keyed: Sample[],
    unlabelled: Sample[],
    judge: string,
    seedOffset: number,
    label: string,
  ): Promise<void> {
    const { cfg, p, recipe } = this;
    const { model, tok, release } = await this.loadModel(from);
    try {
      const {
        selfConsistency: _sc,
        reward: _r,
        rewardModelWeight: _a,
        exactMatchWeight: _b,
        ...grpoOptions
      } = cfg.grpo;
      const prompts = recipe.grpoPrompts([...keyed, ...unlabelled]);
      const generationBatch = this.generationBatch(
        'grpo rollouts',
        model,
        tok,
        prompts.map((x) => x.user),
        cfg.eval.maxNewTokens,
        cfg.generate.batchSize,
        recipe.policySystem,
      );
      this.log(
        `[cycle] ${label} grpo on ${prompts.length} prompts: ${keyed.length} with a key, ${unlabelled.length} without (self-consistency)`,
      );
      const { rewards, dispose } = await this.grpoRewards(judge, label);
      let steps: Awaited<ReturnType<typeof trainGrpo>>;
      try {
        steps = await trainGrpo(
          model,
          prompts,
          rewards,
          {
            ...grpoOptions,
            maxNewTokens: cfg.eval.maxNewTokens,
            seed: cfg.seed + seedOffset,
            tokenizer: tok,
            // the instruct recipe: the model's image settings and stop tokens, rollouts sized by the
            // memory budget, training micro-batches by the token budget
            ...(this.instruct
              ? {
                  images: recipe.images,
                  generationBatch,
                  tokenBudget: cfg.tokenBudget,
                  stopTokens: recipe.stopTokens(tok),
                }
              : {}),
            dist: this.ranks.dist,
            zero: this.ranks.zero,
            lora: this.loraFor(from),
          },
          {
            onStep: (m) =>
              this.reportProgress(`${label} grpo (reward ${m.reward.mean.toFixed(2)})`, m.step, cfg.grpo.steps),
          },
        );
      } finally {
        await dispose();
      }
      const res = { losses: steps.map((m) => m.loss), meanRewards: steps.map((m) => m.reward.mean) };
      await this.saveModel(model, to);
      this.writeJson(p.log(to), res);
      const m = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
      this.log(
        `[cycle] ${label} grpo: mean reward ${m(res.meanRewards.slice(0, 5)).toFixed(3)} -> ${m(res.meanRewards.slice(-5)).toFixed(3)}`,
      );
    } finally {
      await release();
    }
  }

  /**
   * One policy arm outside the rounds (the study's data-efficiency arms): SFT of the initial weights on
   * the seed + `generated`, GRPO on the same samples (rewarded with `judge`), both evaluated on the test
   * sets as arms `<name>Sft` and `<name>Grpo` (round 0). Resumable stages like the rounds'; call after run().
   */
  async policyArm(name: string, generated: Sample[], judge: string): Promise<{ sft: EvalRecord; grpo: EvalRecord }> {
    const { cfg, p, recipe } = this;
    const seed = readSamples(p.seed).messages;
    const tests = this.readTests();
    const data = [...seed, ...generated];
    const sftModel = `policy-sft-${name}`;
    const grpoModel = `policy-grpo-${name}`;
    await this.stage(`${name}-policy-sft`, 0, { outputs: [p.model(sftModel)] }, () =>
      this.sft(
        'init',
        sftModel,
        recipe.policyExamples(data),
        cfg.policySft.steps,
        cfg.policySft.lr,
        `${name} policy-sft`,
        cfg.policySft.tokenBudget,
      ),
    );
    await this.stage(`${name}-policy-grpo`, 0, { inputs: [p.model(sftModel)], outputs: [p.model(grpoModel)] }, () =>
      this.policyGrpo(sftModel, grpoModel, data, [], judge, 1, name),
    );
    const arms = { sft: `${name}Sft`, grpo: `${name}Grpo` };
    await this.stage(`${name}-eval`, 0, { outputs: [p.evalJson(arms.sft, 0), p.evalJson(arms.grpo, 0)] }, async () => {
      await this.evaluate(sftModel, arms.sft, 0, tests);
      await this.evaluate(grpoModel, arms.grpo, 0, tests);
    });
    return { sft: readJson(p.evalJson(arms.sft, 0)), grpo: readJson(p.evalJson(arms.grpo, 0)) };
  }

  /**
   * Trains models/<from> into the judge models/<to> on labelled sample sets (each set builds its own
   * negatives, with its own seed): the generative judge by Yes/No SFT on constructed pairs (plus
   * `confident` pairs), the graded one (config rewardModel) by its score head's MSE on graded pairs
   * (graded_pairs.ts; a model without a head gets one first).
   */
  private async trainJudge(
    from: string,
    to: string,
    sets: { samples: Sample[]; seed: number }[],
    steps: number,
    lr: number,
    stage: string,
    confident: LabelledPair[] = [],
  ): Promise<void> {
    const prompt = this.recipe.judgePrompt;
    if (this.cfg.rewardModel !== 'graded') {
      const pairs = [...sets.flatMap((x) => constructPairs(x.samples, { seed: x.seed })), ...confident];
      await this.sft(from, to, pairs.map(judgeExampleWith(prompt)), steps, lr, stage);
      return;
    }
    const examples = sets
      .flatMap((x) => gradedPairs(x.samples, { seed: x.seed }))
      .map((p) => ({ images: p.images, user: prompt(p.sample), target: p.target }));
    const { model, tok, release } = await this.loadModel(from);
    try {
      if (!(model.config.scoreLabels > 0)) model.addScoreHead({ labels: 1, seed: this.cfg.seed });
      const losses =
        steps > 0 && examples.length > 0
          ? await trainRewardModel(
              model,
              examples,
              {
                lr,
                maxSteps: steps,
                tokenBudget: this.cfg.tokenBudget,
                seed: this.cfg.seed,
                tokenizer: tok,
                imageOptions: this.recipe.images,
                warmupSteps: Math.min(10, Math.ceil(steps / 10)),
                minLrRatio: 0.1,
                dist: this.ranks.dist,
              },
              (i) => this.reportProgress(`${stage} (mse ${i.loss.toFixed(3)})`, i.step, i.totalSteps),
            )
          : [];
      await this.saveModel(model, to);
      this.writeJson(this.p.log(to), { losses });
      const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
      this.log(
        `[cycle] ${stage}: graded reward model, ${losses.length} steps on ${examples.length} graded pairs, mse ${mean(losses.slice(0, 5)).toFixed(3)} -> ${mean(losses.slice(-5)).toFixed(3)}`,
      );
    } finally {
      await release();
    }
  }

  // ---- one round ----

  private async round(r: number, seed: Sample[], pool: PoolImage[], tests: TestSets): Promise<void> {
    const { cfg, p } = this;
    fs.mkdirSync(p.roundDir(r), { recursive: true });
    // without co-evolution, rounds after the first reuse G_1 and R_1
    const gen = cfg.coEvolve ? `generator-${r}` : 'generator-1';
    const judge = cfg.coEvolve ? `judge-${r}` : 'judge-1';
    const seedKeys = new Set(seed.map(seedCopyKey));
    const { recipe } = this;
    const taskMix = recipe.taskMix;
    const stats: Partial<RoundRecord> = { round: r };

    await this.stage(
      'generate',
      r,
      { inputs: [this.modelDir(gen), p.poolFile], outputs: [p.candidates(r)] },
      async () => {
        const { model, tok, release } = await this.loadModel(gen);
        try {
          const { memoryBudgetMiB: _budget, ...generate } = cfg.generate;
          const tasks = Object.keys(taskMix);
          const hints = (function* () {
            for (const x of pool)
              for (const task of tasks)
                yield recipe.generatorPrompt({ modality: x.modality, task, description: x.description });
          })();
          const batchSize = this.generationBatch(
            'generate',
            model,
            tok,
            hints,
            generate.maxNewTokens,
            generate.batchSize,
          );
          this.reportProgress(`round ${r} generate`, 0, pool.length * generate.perImage);
          const cands = await generateCandidates(model, tok, pool, {
            ...generate,
            batchSize,
            taskMix,
            seed: cfg.seed,
            round: r,
            seedKeys,
            vocabulary: recipe.vocabulary,
            progress: this.progress(`round ${r} generate`),
            runBatches: this.ranks.runBatches,
            parse: recipe.parseReply,
            ...(this.instruct
              ? { ...recipe.images, prompt: recipe.generatorPrompt, stopTokens: recipe.stopTokens(tok) }
              : {}),
          });
          // tasks the seed lacks, written by their cards (task_cards.ts)
          const cards = recipe.taskCards;
          const written = cardCandidates(
            pool,
            cards,
            { round: r, seedKeys, vocabulary: recipe.vocabulary },
            recipe.parseReply,
            describedFact,
          );
          if (cards.length)
            this.log(`[cycle] round ${r} task cards: ${written.length} candidates written by their cards`);
          if (this.ranks.isMain) writeMessageFileAtomic(p.candidates(r), 'medgr2.Candidate', [...cands, ...written]);
        } finally {
          await release();
        }
      },
    );

    await this.stage(
      'score',
      r,
      { inputs: [this.modelDir(judge), p.candidates(r)], outputs: [p.scored(r)] },
      async () => {
        const cands = readMessageFile<Candidate>(p.candidates(r), { expect: 'medgr2.Candidate' }).messages;
        const { model, tok, release } = await this.loadModel(judge);
        try {
          this.reportProgress(`round ${r} score`, 0, cands.filter((c) => c.valid).length);
          const scored = await scoreCandidates(model, tok, cands, {
            judgeRound: r,
            progress: this.progress(`round ${r} score`),
            runBatches: this.ranks.runBatches,
            ...this.judgeOptions(
              tok,
              cands.filter((c) => c.valid).map((c) => c.sample),
            ),
          });
          if (this.ranks.isMain) writeMessageFileAtomic(p.scored(r), 'medgr2.ScoredCandidate', scored);
        } finally {
          await release();
        }
      },
    );

    await this.stage(
      'select',
      r,
      { inputs: [p.scored(r)], outputs: [p.selected(r)] },
      async () => {
        const scored = readMessageFile<ScoredCandidate>(p.scored(r), { expect: 'medgr2.ScoredCandidate' }).messages;
        const sel = selectCandidates(scored, {
          ...cfg.select,
          statedFact: this.recipe.statedFact,
          seed: cfg.seed + r,
          rankBy: cfg.rewardFilter ? 'reward' : 'random',
        });
        writeMessageFileAtomic(p.selected(r), 'medgr2.ScoredCandidate', sel);
        const s = selectionSummary(sel);
        this.log(`[cycle] round ${r} select: ${s.candidates} candidates, ${s.valid} valid, ${s.kept} kept`);
      },
      'main',
    );

    await this.stage(
      'judge-eval',
      r,
      { inputs: [this.modelDir(judge), p.judgePairs], outputs: [path.join(p.roundDir(r), 'judge-eval.json')] },
      async () => {
        const pairs = readJson<LabelledPair[]>(p.judgePairs);
        const { model, tok, release } = await this.loadModel(judge);
        try {
          this.reportProgress(`round ${r} judge-eval`, 0, pairs.length);
          const scores = await judgeRewards(model, tok, pairs, {
            runBatches: this.ranks.runBatches,
            progress: this.progress(`round ${r} judge-eval`),
            ...this.judgeOptions(
              tok,
              pairs.map((x) => x.sample),
            ),
          });
          const labels = pairs.map((x) => x.label);
          const res = { accuracy: accuracyAt(scores, labels), auc: auc(scores, labels), pairs: pairs.length };
          this.writeJson(path.join(p.roundDir(r), 'judge-eval.json'), res);
          this.log(
            `[cycle] round ${r} judge on ${pairs.length} held-out pairs: accuracy ${(100 * res.accuracy).toFixed(1)}%, AUC ${res.auc.toFixed(3)}`,
          );
        } finally {
          await release();
        }
      },
    );

    // every round's selection so far, each file read once
    const selections = Array.from(
      { length: r },
      (_, k) => readMessageFile<ScoredCandidate>(p.selected(k + 1), { expect: 'medgr2.ScoredCandidate' }).messages,
    );
    const kept = selections
      .flat()
      .filter((s) => s.selected)
      .map((s) => s.candidate.sample);
    const thisRound = selections[r - 1];

    const nextGen = `generator-${r + 1}`;
    const nextJudge = `judge-${r + 1}`;
    const policyData = [...seed, ...kept];
    // The next round's generator and judge, and this round's policies, read only this round's
    // selection: two lanes (this.lanes).
    await this.lanes(
      async () => {
        if (cfg.coEvolve || r === 1) {
          await this.stage(
            'co-develop-generator',
            r,
            { inputs: [this.modelDir(gen), p.selected(r)], outputs: [p.model(nextGen)] },
            async () => {
              // rejection-sampling fine-tuning on this round's kept samples (recipe.ts) that the generator
              // wrote: a task card's are not its replies, and it is never asked for their task
              const descriptions = new Map(pool.map((x) => [x.image, x.description]));
              const ex = recipe.coDevelopGeneratorExamples(
                thisRound.filter((s) => s.selected && !writtenByCard(s.candidate)).map((s) => s.candidate),
                seed,
                (image) => descriptions.get(image),
              );
              await this.sft(
                gen,
                nextGen,
                ex,
                cfg.coDevelop.generatorSteps,
                cfg.coDevelop.lr,
                `round ${r} co-develop-generator`,
              );
            },
          );
          await this.stage(
            'co-develop-judge',
            r,
            { inputs: [this.modelDir(judge), p.seed, p.scored(r)], outputs: [p.model(nextJudge)] },
            async () => {
              // besides the seed, the round's kept samples with constructed negatives (judgeData 'kept'), or
              // the judge's own confident judgments ('confident', the generative judge only)
              const c = cfg.coDevelop;
              const kept = thisRound.filter((s) => s.selected).map((s) => s.candidate.sample);
              const confident = c.judgeData === 'confident';
              await this.trainJudge(
                judge,
                nextJudge,
                [
                  { samples: seed, seed: cfg.seed + r },
                  ...(confident ? [] : [{ samples: kept, seed: cfg.seed + 100 + r }]),
                ],
                c.judgeSteps,
                c.lr,
                `round ${r} co-develop-judge`,
                confident ? confidentPairs(thisRound, { hi: c.confidentHi, lo: c.confidentLo }) : [],
              );
            },
          );
        }
      },
      async () => {
        await this.stage(
          'policy-sft',
          r,
          {
            inputs: [p.seed, ...Array.from({ length: r }, (_, k) => p.selected(k + 1))],
            outputs: [p.model(`policy-sft-${r}`)],
          },
          async () => {
            this.log(
              `[cycle] round ${r} policy SFT on ${policyData.length} samples (${seed.length} seed + ${kept.length} generated)`,
            );
            await this.sft(
              'init',
              `policy-sft-${r}`,
              recipe.policyExamples(policyData),
              cfg.policySft.steps,
              cfg.policySft.lr,
              `round ${r} policy-sft`,
              cfg.policySft.tokenBudget,
            );
          },
        );

        await this.stage(
          'policy-grpo',
          r,
          { inputs: [p.model(`policy-sft-${r}`)], outputs: [p.model(`policy-grpo-${r}`)] },
          () => {
            // the questions whose rationale contradicts their answer, without the answer: the policy is
            // rewarded there for answering what its own thought names (answerReward)
            const unlabelled = cfg.grpo.selfConsistency
              ? contradictedCandidates(selections.flat()).map((s) => ({ ...s.candidate.sample, answer: '' }))
              : [];
            return this.policyGrpo(
              `policy-sft-${r}`,
              `policy-grpo-${r}`,
              policyData,
              unlabelled,
              judge,
              r,
              `round ${r}`,
            );
          },
        );

        await this.stage('eval', r, { outputs: [p.evalJson('sftCycle', r), p.evalJson('grpoCycle', r)] }, async () => {
          await this.evaluate(`policy-sft-${r}`, 'sftCycle', r, tests);
          await this.evaluate(`policy-grpo-${r}`, 'grpoCycle', r, tests);
        });
      },
    );

    await this.stage(
      'round-summary',
      r,
      { outputs: [p.roundJson(r)] },
      async () => {
        const curve = (m: string): { losses?: number[]; meanRewards?: number[] } =>
          fs.existsSync(p.log(m)) ? readJson(p.log(m)) : {};
        const sum = selectionSummary(thisRound);
        const reasons: Record<string, number> = {};
        for (const s of thisRound)
          if (!s.candidate.valid)
            reasons[s.candidate.invalidReason.replace(/\(.*$/, '').trim()] =
              (reasons[s.candidate.invalidReason.replace(/\(.*$/, '').trim()] ?? 0) + 1;
        const rec: RoundRecord = {
          ...(stats as { round: number }),
          ...sum,
          grounded: groundedCount(thisRound.map((s) => s.candidate)),
          taskCards: cardCounts(thisRound, this.recipe.taskCards),
          rewards: thisRound.map((s) => s.reward),
          rewardsValid: thisRound.filter((s) => s.candidate.valid).map((s) => s.reward),
          rewardsKept: thisRound.filter((s) => s.selected).map((s) => s.reward),
          judge: readJson(path.join(p.roundDir(r), 'judge-eval.json')),
          invalidReasons: reasons,
          generatorSteps: curve(nextGen).losses?.length ?? 0,
          judgeSteps: curve(nextJudge).losses?.length ?? 0,
          policySftLoss: curve(`policy-sft-${r}`).losses ?? [],
          grpoMeanReward: curve(`policy-grpo-${r}`).meanRewards ?? [],
          selectionPrecision: cfg.pool ? undefined : selectionPrecision(thisRound, cfg.world.seedModalities),
        };
        const sp = rec.selectionPrecision;
        if (sp)
          this.log(
            `[cycle] round ${r} selection precision: kept ${sp.keptCorrect}/${sp.kept} correct, dropped ${sp.droppedCorrect}/${sp.dropped} correct`,
          );
        writeJsonAtomicSync(p.roundJson(r), rec);
      },
      'main',
    );
  }
}

/** The default recipe's generator SFT example for a labelled sample: hints and description in, the
 *  compact JSON sample out (recipe.ts). */
export const generatorExample = medsynthGeneratorExample;
