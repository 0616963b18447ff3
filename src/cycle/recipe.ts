// What the two recipes of the cycle do differently, in one place (config.ts recipeOf picks one):
//   medsynth  the tiny model on MedSynth: compact prompts worded for the tiny tokenizer, the
//             generator's compact reply completed from the seed's vocabulary, the judge read from
//             its logits, the policy answering with the option's text after a described image;
//   instruct  a pretrained VLM (--model): plain-language prompts (instruct_prompts.ts) in the chosen
//             generator style, the full JSON reply, the judge read through the fused log-prob op,
//             Med-R1's reply format answering as the seed's keys do, the model folder's image
//             bounds and stop tokens.
// The stage graph (which warm-ups run) and the batch sizes are the Cycle's (cycle.ts, sizing.ts).
import type { Candidate, Sample } from '../data/proto';
import type { TextTokenizer } from '../data/tokenizer';
import type { ImageOptions } from '../model/encode';
import { readGenerationSettings, readProcessorSettings, stopTokensOf, withPixelBounds } from '../model/folder_settings';
import { POLICY_SYSTEM, policyPrompt, type PromptStyle } from '../eval/policy_prompt';
import type { GrpoPrompt } from '../train/rewards';
import { grpoPromptsFromSamples } from '../train/grpo_rollout';
import { sftExamplesFromSamples, type SftExample } from '../train/sft';
import { recipeOf, type AnswerFormat, type CycleConfig, type GeneratorPromptStyle, type RecipeName } from './config';
import { factOfTask, withDescriptions } from './describe';
import { captionFactsOf } from '../data/medsynth/captions';
import {
  compactGeneratorReply,
  generatorPrompt,
  optionVocabulary,
  parseGeneratorReply,
  type ParseContext,
} from './generator';
import { groundedParser } from './grounding';
import { cardsForSeed, cardVocabulary, type TaskCard } from './task_cards';
import {
  answerFormatOf,
  INSTRUCT_POLICY_SYSTEM,
  instructGeneratorPrompt,
  instructGeneratorReply,
  instructJudgePrompt,
  instructPolicyExample,
  instructPolicyPrompt,
  parseInstructReply,
  type JudgedSample,
} from './instruct_prompts';
import { judgePrompt } from './prompts';

/**
 * The policy's reply style in both recipes: think, then answer. In the default recipe the thought is
 * the sample's rationale, which for generated samples is the pretrained model's description of the
 * image and for seed samples one written from their labels (withDescriptions): "<think> OCT of the
 * Macula with CNV. </think> <answer> Macula </answer>". The policy keeps describing images of
 * modalities the seed lacks (the pretraining covered them), and the answer can take the fact from
 * its own description; answer-only, it can only map images to the words it was trained on
 * (held-out-modality anatomy 0 of 48 in the default run, every answer a seed anatomy).
 *
 * The default recipe's answer names the option's *text* ("<answer> CT </answer>"), which the scorer
 * and the accuracy reward read like a letter. Why not the letter: a letter asks a 2-layer tiny model
 * to see the image *and* find where that word sits among the options; the text asks only the first
 * (see sftExamplesFromSamples). Trained on letters, the policy stayed at chance (24-26 %) after 400
 * steps. The instruct recipe answers as the seed's keys are written (answerFormatOf).
 */
export const POLICY_STYLE: PromptStyle = 'think';

export interface CycleRecipe {
  readonly name: RecipeName;
  /** Image resize bounds and patch rule of every role ({}: Qwen2-VL's processor defaults). */
  readonly images: ImageOptions;
  /** The generator style (instruct recipe). */
  readonly generatorStyle?: GeneratorPromptStyle;
  /** How the policy names its answer. */
  readonly answerFormat: AnswerFormat;
  /** Tokens that end every reply; undefined: <|im_end|> and <|endoftext|>. */
  stopTokens(tok: TextTokenizer): number[] | undefined;
  /** The generator's tasks to ask for, with weights. */
  readonly taskMix: Record<string, number>;
  /** Option vocabulary per task for compact replies (default recipe only). */
  readonly vocabulary?: Record<string, string[]>;
  /** The task cards the run writes (default recipe; those of tasks the seed lacks; task_cards.ts). */
  readonly taskCards: readonly TaskCard[];
  generatorPrompt(ctx: Pick<ParseContext, 'modality' | 'task' | 'description'>): string;
  parseReply(raw: string, ctx: ParseContext): Candidate;
  /** The fact a sample's rationale states for its task, where the recipe's descriptions can be read (select.ts). */
  readonly statedFact?: (sample: Sample) => string | undefined;
  /** The generator's SFT example for a labelled sample (warm-up). */
  generatorExample(s: Sample): SftExample;
  /** Co-develop: the generator's examples from the round's kept candidates and the seed
   *  (`descriptionOf`: a pool image's description, when the pool was described). */
  coDevelopGeneratorExamples(
    kept: readonly Candidate[],
    seed: readonly Sample[],
    descriptionOf: (image: string) => string | undefined,
  ): SftExample[];
  judgePrompt(s: JudgedSample): string;
  readonly judgeReadout: 'logits' | 'logprobs';
  policyExamples(samples: readonly Sample[]): SftExample[];
  grpoPrompts(samples: readonly Sample[]): GrpoPrompt[];
  /** The policy's user turn at evaluation, and its system turn. */
  policyPrompt(s: Sample): string;
  readonly policySystem: string;
}

/** The default recipe's generator example: hints and description in, the compact JSON sample out. */
export function medsynthGeneratorExample(s: Sample): SftExample {
  return {
    images: s.images,
    user: generatorPrompt({ modality: s.modality, task: s.task, description: s.rationale }),
    reply: compactGeneratorReply(s),
  };
}

/**
 * The fact of its task that a sample's rationale states, read as a caption (the default recipe's
 * rationales are the pretrained model's descriptions, in the captions' phrasings): "CNV" from "OCT of
 * the Macula with CNV." for a Disease Diagnosis question. In session 8's default run 30 kept
 * held-out-modality Disease Diagnosis candidates answered "Infarct" after such a description (none of
 * those findings is an option the generator offers, so the option vocabulary could not see the
 * contradiction), and the policy trained on them learned to answer against its own thought.
 */
export function describedFact(sample: Pick<Sample, 'task' | 'rationale'>): string | undefined {
  const field = factOfTask(sample.task);
  if (!field || !sample.rationale) return undefined;
  return captionFactsOf(sample.rationale)?.[field] || undefined;
}

/**
 * How the default recipe reads a generator reply (the cycle, and `medgr2 generate`): parsed and
 * validated, and with `groundAnswers` answered with the fact its description or rationale states for
 * its task (grounding.ts).
 */
export function medsynthReplyParser(groundAnswers: boolean): (raw: string, ctx: ParseContext) => Candidate {
  return groundAnswers ? groundedParser(parseGeneratorReply, describedFact) : parseGeneratorReply;
}

function medsynthRecipe(cfg: CycleConfig, seed: readonly Sample[]): CycleRecipe {
  const taskCards = cardsForSeed(cfg.generate.taskCards ?? [], seed);
  return {
    name: 'medsynth',
    images: {},
    answerFormat: 'text',
    stopTokens: () => undefined,
    taskMix: Object.fromEntries(cfg.world.seedTasks.map((t) => [t, 1])),
    // the task cards' answers too: a card's reply is completed like the generator's compact one
    vocabulary: { ...optionVocabulary(seed), ...cardVocabulary(taskCards) },
    taskCards,
    generatorPrompt: (ctx) => generatorPrompt(ctx),
    parseReply: medsynthReplyParser(!!cfg.generate.groundAnswers),
    statedFact: describedFact,
    generatorExample: medsynthGeneratorExample,
    // rejection-sampling fine-tuning on the kept samples, with the seed mixed in so the format holds
    coDevelopGeneratorExamples: (kept, s) =>
      [...kept.map((c) => c.sample), ...withDescriptions(s)].map(medsynthGeneratorExample),
    judgePrompt: (s) => judgePrompt(s),
    judgeReadout: 'logits',
    policyExamples: (samples) => sftExamplesFromSamples(withDescriptions(samples), POLICY_STYLE, { answer: 'text' }),
    grpoPrompts: (samples) => grpoPromptsFromSamples(samples, POLICY_STYLE),
    policyPrompt: (s) => policyPrompt(s, POLICY_STYLE),
    policySystem: POLICY_SYSTEM,
  };
}

/** Task weights of the seed: each task as often as the seed asks it ("" when the seed names none). */
function seedTaskMix(seed: readonly Sample[]): Record<string, number> {
  const mix: Record<string, number> = {};
  for (const s of seed) mix[s.task] = (mix[s.task] ?? 0) + 1;
  return mix;
}

/** The instruct recipe's image settings: the model folder's preprocessor_config.json, then --min/--max-pixels. */
export function instructImageOptions(cfg: Pick<CycleConfig, 'model' | 'minPixels' | 'maxPixels'>): ImageOptions {
  if (!cfg.model) throw new Error('instruct recipe: no model folder');
  const s = withPixelBounds(readProcessorSettings(cfg.model), { minPixels: cfg.minPixels, maxPixels: cfg.maxPixels });
  return { minPixels: s.minPixels, maxPixels: s.maxPixels, patch: s.patch };
}

function instructRecipe(cfg: CycleConfig, seed: readonly Sample[]): CycleRecipe {
  const model = cfg.model as string;
  const style = cfg.generatorPrompt ?? 'metacognitive';
  const format = cfg.answerFormat ?? answerFormatOf(seed);
  const generation = readGenerationSettings(model);
  const policyPromptOf = (s: Sample) => instructPolicyPrompt(s, format);
  return {
    name: 'instruct',
    images: instructImageOptions(cfg),
    generatorStyle: style,
    answerFormat: format,
    stopTokens: (tok) => stopTokensOf(generation, [tok.special.imEnd, tok.special.endOfText]),
    taskMix: seedTaskMix(seed),
    taskCards: [],
    generatorPrompt: (ctx) => instructGeneratorPrompt(style, ctx),
    parseReply: parseInstructReply,
    generatorExample: (s) => ({
      images: s.images,
      user: instructGeneratorPrompt(style, { modality: s.modality, task: s.task }),
      reply: instructGeneratorReply(s),
    }),
    // rejection-sampling fine-tuning on the generator's own kept replies, reasoning included (a
    // pretrained model holds the format without the seed mixed in)
    coDevelopGeneratorExamples: (kept, _seed, descriptionOf) =>
      kept.map((c) => ({
        images: c.sample.images,
        // the prompt it answered: the pool's modality, the task drawn for it, the image's description
        user: instructGeneratorPrompt(style, {
          modality: c.sample.modalityOriginal,
          task: c.sample.taskOriginal,
          description: descriptionOf(c.sample.images[0] ?? ''),
        }),
        reply: c.raw.trim(),
      })),
    judgePrompt: instructJudgePrompt,
    judgeReadout: 'logprobs',
    policyExamples: (samples) => samples.map((s) => instructPolicyExample(s, format)),
    grpoPrompts: (samples) =>
      samples.map((s) => ({
        id: s.id,
        images: [...s.images],
        user: policyPromptOf(s),
        system: INSTRUCT_POLICY_SYSTEM,
        sample: s,
      })),
    policyPrompt: policyPromptOf,
    policySystem: INSTRUCT_POLICY_SYSTEM,
  };
}

/** The run's recipe; `seed`: the run's labelled seed (task mix, vocabulary, answer format). */
export function cycleRecipe(cfg: CycleConfig, seed: readonly Sample[]): CycleRecipe {
  return recipeOf(cfg) === 'instruct' ? instructRecipe(cfg, seed) : medsynthRecipe(cfg, seed);
}
