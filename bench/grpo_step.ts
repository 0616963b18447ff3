// Wall-time split of one GRPO step (src/train/grpo_trainer.ts): rollout (image processing + generation),
// reward, reference log-probs, old log-probs (recomputed here so it is measured), the rollout/trainer
// check, loss + backward, optimizer. Median over the timed steps after one warm-up step. Run twice:
// every token trained, and the top-20 % entropy mask (entropyTopQuantile 0.2), for the mask's cost;
// then the rollout/trainer mismatch each run measured.
//
//   node dist/bench/grpo_step.js                  tiny Qwen2-VL on CPU (MedSynth 56 px images)
//   node dist/bench/grpo_step.js --shape 3b       a Qwen2.5-VL-3B-shaped random model (bfloat16 on
//        [--device cuda] [--steps N]              cuda): 36 layers x 2048, vision 32 x 1280; needs a
//        [--prompts P] [--group G] [--new T]       GPU with ~40 GB for P=8, G=8, T=256 (not run on CPU)
//
// The reward is a pseudo-random function of the completion text, so every group has a spread of
// rewards and every sequence goes through the loss (as a real run with mixed answers does). A
// random model rarely emits a stop token, so completions run to --new tokens: the worst case.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { trainGrpo } from '../src/train/grpo_trainer';
import type { Reward } from '../src/train/rewards';
import { synthesize } from '../src/data/medsynth';
import { hashString } from '../src/util/prng';
import { loadSampleFile } from '../src/data/sample_files';
import { TextTokenizer } from '../src/data/tokenizer';
import { parseModelConfig } from '../src/model/config';
import { Model, type ModelDevice, type ModelDtype } from '../src/model/model';
import { tinyConfig } from '../src/model/tiny';
import { appendCsv, printTable, type Row } from './harness';
import { grpoPromptsFromSamples } from '../src/train/grpo_rollout';
import { type GrpoStepMetrics } from '../src/train/grpo_metrics';

/** Qwen2.5-VL-3B-Instruct's shapes (config.json of the hub release), with the tiny tokenizer's special
 *  token ids so that the project's tokenizer drives it; weights are random. */
export function qwen25vl3bConfig() {
  const raw = {
    architectures: ['Qwen2_5_VLForConditionalGeneration'],
    model_type: 'qwen2_5_vl',
    bos_token_id: 757,
    eos_token_id: 759,
    vision_start_token_id: 760,
    vision_end_token_id: 761,
    image_token_id: 762,
    video_token_id: 763,
    hidden_act: 'silu',
    hidden_size: 2048,
    intermediate_size: 11008,
    num_hidden_layers: 36,
    num_attention_heads: 16,
    num_key_value_heads: 2,
    max_position_embeddings: 128000,
    max_window_layers: 70,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 32768,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: 151936,
    vision_config: {
      depth: 32,
      hidden_act: 'silu',
      hidden_size: 1280,
      intermediate_size: 3420,
      num_heads: 16,
      in_channels: 3,
      out_hidden_size: 2048,
      patch_size: 14,
      spatial_merge_size: 2,
      temporal_patch_size: 2,
      window_size: 112,
      fullatt_block_indexes: [7, 15, 23, 31],
      tokens_per_second: 2,
    },
    rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  };
  return parseModelConfig(raw, 'qwen2.5-vl-3b shape');
}

function arg(argv: string[], name: string, dflt: string): string {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function run(argv: string[] = []): Promise<Row[]> {
  const shape = arg(argv, '--shape', 'tiny');
  if (shape !== 'tiny' && shape !== '3b') throw new Error(`--shape must be tiny or 3b, got ${shape}`);
  const big = shape === '3b';
  const device = arg(argv, '--device', big ? 'cuda' : 'cpu') as ModelDevice;
  const dtype = arg(argv, '--dtype', big ? 'bfloat16' : 'float32') as ModelDtype;
  const steps = Number(arg(argv, '--steps', '3'));
  const P = Number(arg(argv, '--prompts', big ? '8' : '4'));
  const G = Number(arg(argv, '--group', '8'));
  const T = Number(arg(argv, '--new', big ? '256' : '32'));
  const size = Number(arg(argv, '--size', big ? '448' : '56'));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgr2-bench-grpo-'));
  try {
    await synthesize({ out: dir, count: Math.max(8, P), seed: 1, size });
    const samples = loadSampleFile(path.join(dir, 'medsynth.jsonl')).filter((s) => s.task === 'Modality Recognition');
    const prompts = grpoPromptsFromSamples(samples, 'answer');
    const tok = TextTokenizer.load();
    const cfg = big ? qwen25vl3bConfig() : tinyConfig('qwen2_vl');
    const model = await Model.create(cfg, { seed: 1, device, dtype });
    if (big) model.setRecomputeActivations(true);
    const noise: Reward = { name: 'noise', weight: 1, fn: (c) => (hashString(c) % 1000) / 1000 };
    const runOnce = async (entropyTopQuantile: number): Promise<GrpoStepMetrics[]> => {
      const model = await Model.create(cfg, { seed: 1, device, dtype });
      if (big) model.setRecomputeActivations(true);
      try {
        return await trainGrpo(model, prompts, [noise], {
          tokenizer: tok,
          images: { imageRoot: dir },
          steps: steps + 1,
          promptsPerStep: P,
          groupSize: G,
          maxNewTokens: T,
          temperature: 1,
          lr: 1e-6,
          beta: 0.04,
          oldLogp: 'recompute',
          numIterations: 1,
          tokenBudget: big ? 16384 : 8192,
          entropyTopQuantile,
          seed: 1,
          progress: false,
        });
      } finally {
        await model.dispose();
      }
    };
    const phases = [
      'rollout',
      'reward',
      'logprobRef',
      'logprobOld',
      'logprobCheck',
      'lossBackward',
      'optimizer',
      'total',
    ] as const;
    const rows: Row[] = [];
    const mismatchRows: Row[] = [];
    const lossBackward: Record<string, number> = {};
    for (const [variant, q] of [
      ['all tokens', 1],
      ['top-20% entropy', 0.2],
    ] as const) {
      const timed = (await runOnce(q)).slice(1);
      const total = median(timed.map((m) => m.time.total));
      const tokens = median(timed.map((m) => m.tokens.completion));
      lossBackward[variant] = median(timed.map((m) => m.time.lossBackward));
      for (const p of phases) {
        const sec = median(timed.map((m) => m.time[p]));
        rows.push({
          bench: 'grpo_step',
          variant,
          shape,
          device,
          dtype,
          prompts: P,
          group: G,
          max_new: T,
          phase: p,
          ms: sec * 1000,
          share: p === 'total' ? 1 : sec / total,
          'completion tok/s': p === 'total' ? tokens / total : p === 'rollout' ? tokens / sec : '',
        });
      }
      mismatchRows.push({
        bench: 'grpo_step_mismatch',
        variant,
        shape,
        device,
        dtype,
        'max |rollout - trainer|': Math.max(...timed.map((m) => m.mismatch.maxAbs)),
        'mean |rollout - trainer|': median(timed.map((m) => m.mismatch.meanAbs)),
        'KL(rollout || trainer)': median(timed.map((m) => m.mismatch.kl)),
        'kept tokens': median(timed.map((m) => m.entropyKept.fraction)),
        'loss+backward x all': lossBackward[variant] / lossBackward['all tokens'],
      });
    }
    printTable(
      `grpo_step: ${shape} on ${device} (${dtype}), ${P} prompts x ${G} rollouts x ${T} new tokens, beta 0.04, old log-probs recomputed; median of ${steps} steps`,
      rows,
    );
    printTable('grpo_step: rollout/trainer mismatch of the first micro-batch, and the entropy mask', mismatchRows);
    appendCsv('grpo_step', rows);
    // The mismatch is the figure a GPU run in bf16 is for (docs/GRPO.md): kept with the timings.
    appendCsv('grpo_step_mismatch', mismatchRows);
    return rows;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module)
  run(process.argv.slice(2)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
