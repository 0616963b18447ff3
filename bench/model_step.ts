// Model throughput on this machine: training tokens/s (forward + backward + AdamW) and decode
// tokens/s, for the tiny config and a small one, text-only and with an image per sequence.
// `--shape 3b` builds a Qwen2.5-VL-3B-shaped random model in bf16 on CUDA (GPU machines only):
// 2048-token sequences, the MFU figure uses 6 * params * tokens / time.
import { Model, nextTokenLabels, packSequences, tinyConfig, type ModelTypes } from '../src/index';
import { appendCsv, printTable, timeIt, type Row } from './harness';

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
    const model = await Model.create(cfg, {
      seed: 1,
      device: gpu ? 'cuda' : 'cpu',
      dtype: gpu ? 'bfloat16' : 'float32',
    });
    const params = model.info.parameterCount;
    const V = cfg.text.vocabSize;
    const batchSeqs = Array.from({ length: seqs }, (_, s) =>
      Int32Array.from({ length: len }, (_, t) => (s * 7919 + t * 104729) % Math.min(V, 700)),
    );
    const batch = packSequences(batchSeqs);
    const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
    const tokens = seqs * len;
    const train = await timeIt(
      async () => {
        await model.backwardSft(batch, { labels });
        await model.optimizerStep({ lr: 1e-5 });
      },
      { warmup: 1, repeats: 5, budgetMs: 20000 },
    );
    const newTokens = 32;
    const decode = await timeIt(
      () =>
        model.generate(
          batchSeqs.map((s) => s.subarray(0, 16)),
          { maxNewTokens: newTokens, temperature: 1, seed: 1 },
        ),
      { warmup: 1, repeats: 3, budgetMs: 20000 },
    );
    const trainTps = tokens / (train.medianMs / 1000);
    rows.push({
      op: 'model_step',
      model: name,
      params,
      phase: 'train fwd+bwd+adamw',
      shape: `${seqs}x${len}`,
      device: gpu ? 'cuda' : 'cpu',
      ms: train.medianMs,
      'tokens/s': trainTps,
      'TFLOP/s': (6 * params * trainTps) / 1e12,
    });
    rows.push({
      op: 'model_step',
      model: name,
      params,
      phase: `decode (${newTokens} new, batch ${seqs})`,
      shape: `${seqs}x16+${newTokens}`,
      device: gpu ? 'cuda' : 'cpu',
      ms: decode.medianMs,
      'tokens/s': (seqs * newTokens) / (decode.medianMs / 1000),
      'TFLOP/s': '',
    });
    await model.dispose();
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
