// Model throughput on this machine: training tokens/s (forward + backward + AdamW) and decode
// tokens/s, for the tiny config and a small one; and full fine-tuning against LoRA at ranks 8 / 16 /
// 64 (the decoder's seven projections): trainable parameters, optimizer-state bytes, tokens/s.
// `--shape 3b` builds a Qwen2.5-VL-3B-shaped random model in bf16 on CUDA (GPU machines only):
// 2048-token sequences, the MFU figure uses 6 * params * tokens / time.
import { Model, nextTokenLabels, packSequences, tinyConfig, type ModelTypes } from '../src/index';
import { appendCsv, printTable, timeIt, type Row } from './harness';
import { resolveLoraSpec } from '../src/model/lora';
import { useLoraAdapter } from '../src/train/lora_training';

/** LoRA ranks measured beside full fine-tuning (0). */
const LORA_RANKS = [0, 8, 16, 64];

/** Bytes of the optimizer's state (moments, float32 masters, step). */
function optimizerBytes(model: Model): number {
  return Object.values(model.optimizerState()).reduce((n, t) => n + t.nbytes, 0);
}

/** The small config: 4 decoder layers of width 256 (dist_step.ts trains it too). */
export function smallConfig(): ModelTypes.ModelConfig {
  const c = tinyConfig('qwen2_vl', { tie: false });
  return {
    ...c,
    text: {
      ...c.text,
      hiddenSize: 256,
      intermediateSize: 704,
      numLayers: 4,
      numHeads: 8,
      numKvHeads: 2,
      headDim: 32,
      mropeSection: [4, 6, 6],
    },
    vision: c.vision && { ...c.vision, embedDim: 128, numHeads: 4, mlpHiddenDim: 512, depth: 4, outHiddenSize: 256 },
  };
}

function qwen25vl3b(): ModelTypes.ModelConfig {
  const c = tinyConfig('qwen2_5_vl', { tie: true });
  return {
    ...c,
    text: {
      ...c.text,
      vocabSize: 151936,
      hiddenSize: 2048,
      intermediateSize: 11008,
      numLayers: 36,
      numHeads: 16,
      numKvHeads: 2,
      headDim: 128,
      mropeSection: [16, 24, 24],
      ropeTheta: 1e6,
    },
    vision: c.vision && {
      ...c.vision,
      depth: 32,
      embedDim: 1280,
      numHeads: 16,
      mlpHiddenDim: 3420,
      outHiddenSize: 2048,
      windowSize: 112,
      fullAttBlockIndexes: [7, 15, 23, 31],
    },
    imageTokenId: 151655,
    videoTokenId: 151656,
    visionStartTokenId: 151652,
    visionEndTokenId: 151653,
  };
}

async function decodeRow(model: Model, name: string, batchSeqs: Int32Array[], device: string): Promise<Row> {
  const newTokens = 32;
  const seqs = batchSeqs.length;
  const decode = await timeIt(
    () =>
      model.generate(
        batchSeqs.map((s) => s.subarray(0, 16)),
        { maxNewTokens: newTokens, temperature: 1, seed: 1 },
      ),
    { warmup: 1, repeats: 3, budgetMs: 20000 },
  );
  return {
    op: 'model_step',
    model: name,
    params: model.info.parameterCount,
    phase: `decode (${newTokens} new, batch ${seqs})`,
    shape: `${seqs}x16+${newTokens}`,
    device,
    ms: decode.medianMs,
    'tokens/s': (seqs * newTokens) / (decode.medianMs / 1000),
    'TFLOP/s': '',
  };
}

export async function run(argv: string[] = []): Promise<Row[]> {
  const gpu = argv.includes('--shape') && argv[argv.indexOf('--shape') + 1] === '3b';
  const shapes: [string, ModelTypes.ModelConfig, number, number][] = gpu
    ? [['qwen2.5-vl-3b', qwen25vl3b(), 8, 2048]]
    : [
        ['tiny', tinyConfig('qwen2_vl'), 8, 128],
        ['small', smallConfig(), 8, 256],
      ];
  const rows: Row[] = [];
  for (const [name, cfg, seqs, len] of shapes) {
    const placement = { seed: 1, device: gpu ? 'cuda' : 'cpu', dtype: gpu ? 'bfloat16' : 'float32' } as const;
    const V = cfg.text.vocabSize;
    const batchSeqs = Array.from({ length: seqs }, (_, s) =>
      Int32Array.from({ length: len }, (_, t) => (s * 7919 + t * 104729) % Math.min(V, 700)),
    );
    const batch = packSequences(batchSeqs);
    const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
    const tokens = seqs * len;
    for (const rank of LORA_RANKS) {
      const model = await Model.create(cfg, placement);
      if (rank > 0) useLoraAdapter(model, resolveLoraSpec({ rank, alpha: 2 * rank }), 1);
      const params = model.info.parameterCount;
      const train = await timeIt(
        async () => {
          await model.backwardSft(batch, { labels });
          await model.optimizerStep({ lr: 1e-5 });
        },
        { warmup: 1, repeats: 5, budgetMs: 20000 },
      );
      const trainTps = tokens / (train.medianMs / 1000);
      rows.push({
        op: 'model_step',
        model: name,
        params,
        phase: rank > 0 ? `train lora r${rank}` : 'train fwd+bwd+adamw',
        shape: `${seqs}x${len}`,
        device: placement.device,
        ms: train.medianMs,
        'tokens/s': trainTps,
        // forward 2 x params, backward to the activations another 2 x, weight gradients 2 x trainable
        'TFLOP/s': ((4 * params + 2 * model.info.trainableCount) * trainTps) / 1e12,
        trainable: model.info.trainableCount,
        'optimizer MB': optimizerBytes(model) / 2 ** 20,
      });
      if (rank === 0) rows.push(await decodeRow(model, name, batchSeqs, placement.device));
      await model.dispose();
    }
  }
  printTable('model_step: training and decoding throughput', rows);
  appendCsv('model_step', rows);
  return rows;
}

if (require.main === module)
  run(process.argv.slice(2)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
