// The graded reward model: a tiny VLM with a score head learns graded targets on image prompts (the
// MSE falls by > 90 %), the judge's 'head' readout is the head's score mapped onto [0, 1] prompt by
// prompt, and a model without a head is refused with a clear error.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { gradedPairs, normalizedScore } from '../../src/cycle/graded_pairs';
import { judgeRewards } from '../../src/cycle/judge';
import { judgePrompt } from '../../src/cycle/prompts';
import { synthesize } from '../../src/data/medsynth/world';
import { loadSampleFile } from '../../src/data/sample_files';
import { TextTokenizer } from '../../src/data/tokenizer';
import { encodeConversation, loadImages, packInOrder, toModelBatch } from '../../src/model/encode';
import { Model } from '../../src/model/model';
import { tinyConfig } from '../../src/model/tiny';
import { trainRewardModel } from '../../src/train/reward_model';
import { tempDir } from '../helpers/temp_dir';

async function smallSeed() {
  const dir = tempDir('reward-model');
  await synthesize({ out: dir, count: 3, seed: 11, modalities: ['CT', 'MRI'] as never });
  const file = path.join(dir, 'medsynth.jsonl');
  return loadSampleFile(file).map((s) => ({ ...s, images: s.images.map((p) => path.join(dir, p)) }));
}

test('a tiny reward model learns graded targets; the head readout is its score on [0, 1]', async () => {
  const seed = (await smallSeed()).slice(0, 3);
  const pairs = gradedPairs(seed, { seed: 2 });
  assert.ok(new Set(pairs.map((p) => p.target)).size >= 3, 'several grades');
  const examples = pairs.map((p) => ({ images: p.images, user: judgePrompt(p.sample), target: p.target }));
  const tok = TextTokenizer.load();
  const model = await Model.create(tinyConfig('qwen2_vl'), { seed: 3 });
  try {
    await assert.rejects(
      trainRewardModel(model, examples, { lr: 1e-3, maxSteps: 1, tokenBudget: 4096, seed: 1, tokenizer: tok }),
      /no score head/,
    );
    model.addScoreHead({ labels: 1, seed: 4 });
    const losses = await trainRewardModel(model, examples, {
      lr: 3e-3,
      maxSteps: 200,
      tokenBudget: 4096, // every example in one micro-batch: the loss is the whole set's MSE
      seed: 1,
      tokenizer: tok,
      warmupSteps: 5,
    });
    console.log(`reward model mse ${losses[0].toFixed(2)} -> ${losses.at(-1)!.toFixed(4)}`);
    assert.ok(losses.at(-1)! < 0.1 * losses[0], `${losses[0]} -> ${losses.at(-1)}`);

    // the judge's head readout against the head's own scores, one prompt at a time
    const items = pairs.slice(0, 5).map((p) => ({ images: p.images, sample: p.sample }));
    const got = await judgeRewards(model, tok, items, { readout: 'head' });
    for (const [i, it] of items.entries()) {
      const enc = encodeConversation(tok, await loadImages(it.images), judgePrompt(it.sample));
      const [score] = await model.scores(toModelBatch(packInOrder([enc])).batch);
      assert.ok(Math.abs(got[i] - normalizedScore(score)) < 1e-5, `${got[i]} vs ${normalizedScore(score)}`);
    }
    // trained: each original scores above its irrelevant copy
    const byGrade = (g: string) => pairs.filter((p) => p.grade === g).slice(0, 3);
    const orig = await judgeRewards(model, tok, byGrade('original'), { readout: 'head' });
    const irr = await judgeRewards(model, tok, byGrade('irrelevant'), { readout: 'head' });
    assert.ok(Math.min(...orig) > Math.max(...irr), `${orig} vs ${irr}`);
  } finally {
    await model.dispose();
  }
});
