// No silent NaN: a step with a non-finite loss or gradient norm updates nothing (weights and AdamW
// state bit-identical), is counted and said, and a few in a row stop the run with an error naming
// the step and the quantity; `medgr2 sft` then exits non-zero and writes no final/ folder.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Model, packSequences, nextTokenLabels, tinyConfig, Tensor } from '../../src/index';
import { NonFiniteGuard } from '../../src/train/nonfinite_guard';
import { listCheckpoints } from '../../src/train/run_state';
import { trainSft, type SftExample } from '../../src/train/sft';
import { readMetrics } from '../../src/report/metrics';
import { runCli } from '../helpers/cli';
import { medsynthWorld } from '../helpers/world';
import { tempDir } from '../helpers/temp_dir';

const textExamples: SftExample[] = Array.from({ length: 12 }, (_, i) => ({
  images: [],
  user: `Which option is number ${i % 4}?`,
  reply: `<answer> ${'ABCD'[i % 4]} </answer>`,
}));

const bytesOf = (t: Tensor) => {
  const a = t.toArray();
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
};

/** Copies of every weight's and optimizer tensor's bytes, by name. */
function snapshot(m: Model): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, t] of Object.entries(m.parameters())) out.set(`param ${k}`, Buffer.from(bytesOf(t)));
  for (const [k, t] of Object.entries(m.optimizerState())) out.set(`optimizer ${k}`, Buffer.from(bytesOf(t)));
  return out;
}

function assertSameSnapshot(got: Map<string, Buffer>, want: Map<string, Buffer>): void {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [k, b] of want) assert.equal(Buffer.compare(got.get(k) as Buffer, b), 0, k);
}

test('NonFiniteGuard: skips and counts non-finite steps, a finite one resets the streak, the Nth in a row throws naming step and quantity', () => {
  const lines: string[] = [];
  const g = new NonFiniteGuard({ trainer: 'sft', maxConsecutive: 3, warn: (l) => lines.push(l) });
  assert.equal(g.record({ step: 1, loss: 2, gradNorm: 1, skipped: false }), false);
  assert.equal(g.record({ step: 2, loss: NaN, gradNorm: NaN, skipped: true }), true);
  assert.equal(g.record({ step: 3, loss: 1.5, gradNorm: Infinity, skipped: true }), true);
  assert.equal(g.record({ step: 4, loss: 1.4, gradNorm: 0.5, skipped: false }), false, 'a good step ends the streak');
  assert.equal(g.skippedSteps, 2);
  assert.match(lines[0], /^sft: step 2: the loss was NaN, the update was skipped \(1 in a row, 1 in all/);
  assert.match(lines[1], /^sft: step 3: the gradient norm was Infinity, the update was skipped \(2 in a row, 2 in all/);
  g.record({ step: 5, loss: Infinity, gradNorm: NaN, skipped: true });
  g.record({ step: 6, loss: NaN, gradNorm: NaN, skipped: true });
  assert.throws(
    () => g.record({ step: 7, loss: 1, gradNorm: NaN, skipped: true }),
    /^Error: sft: stopped at step 7 after 3 consecutive skipped updates \(steps 5-7\): the loss was Infinity at step 5; lower --lr/,
  );
  assert.equal(g.skippedSteps, 5);
  assert.throws(
    () => new NonFiniteGuard({ trainer: 'grpo', maxConsecutive: 0 }),
    /grpo: maxSkippedSteps must be a whole number >= 1, got 0/,
  );
  const once = new NonFiniteGuard({ trainer: 'grpo', maxConsecutive: 1, skippedBefore: 4, warn: () => {} });
  assert.throws(
    () => once.record({ step: 9, loss: 1, gradNorm: NaN, skipped: true }),
    /grpo: stopped at step 9 after 1 consecutive skipped updates \(step 9\): the gradient norm was NaN at step 9/,
  );
  assert.equal(once.skippedSteps, 5, 'a resumed run keeps counting');
});

test('optimizerStep: skip: true, or a NaN gradient, leaves every weight and the optimizer state bit-identical and reports skipped', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 2 });
  const batch = packSequences([Int32Array.from([1, 2, 3, 4, 5, 6]), Int32Array.from([9, 8, 7])]);
  const labels = nextTokenLabels(batch.inputIds, batch.cuSeqlens);
  // One real step first, so the AdamW moments and step count are not all zero.
  await m.backwardSft(batch, { labels });
  const first = await m.optimizerStep({ lr: 1e-3 });
  assert.equal(first.skipped, false);
  assert.equal(first.step, 1);

  // skip: true with finite gradients (what a trainer passes after a non-finite loss).
  let before = snapshot(m);
  await m.backwardSft(batch, { labels });
  const asked = await m.optimizerStep({ lr: 1e-3, skip: true });
  assert.equal(asked.skipped, true);
  assert.equal(asked.paramsUpdated, 0);
  assert.equal(asked.step, 1, 'a skipped step is not counted');
  assertSameSnapshot(snapshot(m), before);

  // A NaN weight makes the loss and every gradient NaN: the step skips by itself.
  const params = m.parameters();
  const norm = params['model.norm.weight'];
  const poisoned = Float32Array.from(norm.toArray() as Float32Array);
  poisoned[0] = NaN;
  await m.setParameters({ ...params, 'model.norm.weight': new Tensor(poisoned, norm.shape) });
  before = snapshot(m);
  const { loss } = await m.backwardSft(batch, { labels });
  assert.ok(Number.isNaN(loss), `loss ${loss}`);
  const auto = await m.optimizerStep({ lr: 1e-3 });
  assert.equal(auto.skipped, true);
  assert.ok(!Number.isFinite(auto.gradNorm), `gradNorm ${auto.gradNorm}`);
  assert.equal(auto.step, 1);
  assertSameSnapshot(snapshot(m), before);
  assert.deepEqual(await m.nonFiniteParameter(), { name: 'model.norm.weight', count: 1 });
  await m.dispose();
});

test('trainSft with a huge lr stops, naming the step and the quantity, and leaves no checkpoint with non-finite weights', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 1 });
  const out = tempDir('nonfinite-sft');
  let stopped: Error | undefined;
  try {
    await trainSft(m, textExamples, {
      lr: 1e9,
      warmupSteps: 1,
      maxSteps: 12,
      tokenBudget: 200,
      saveEvery: 1,
      keepLast: 0,
      out,
      progress: false,
    });
  } catch (err) {
    stopped = err as Error;
  }
  assert.ok(stopped, 'the run must not end normally');
  const m1 =
    /^sft: stopped at step (\d+) after 3 consecutive skipped updates \(steps (\d+)-(\d+)\): the (loss|gradient norm) was (NaN|Infinity|-Infinity) at step (\d+); lower --lr/.exec(
      stopped.message,
    );
  assert.ok(m1, stopped.message);
  const at = Number(m1[1]);
  assert.equal(Number(m1[2]), at - 2);
  // The weights were never updated by a skipped step: they are finite, and so is every checkpoint
  // (those after a skipped step hold the last good step's weights); the stopping step saved none.
  assert.equal(await m.nonFiniteParameter(), null);
  const saved = listCheckpoints(out).map((c) => c.step);
  assert.ok(saved.length > 0 && saved.every((s) => s < at), `checkpoints ${saved}, stop at ${at}`);
  for (const c of listCheckpoints(out)) await (await Model.load(c.dir)).dispose(); // Model.load refuses NaN
  const rows = readMetrics(path.join(out, 'metrics.jsonl'));
  const last = rows[rows.length - 1];
  assert.equal(last.step, at);
  assert.equal(last['train/skipped_steps'], 3);
  await m.dispose();
});

test('medgr2 sft with a huge lr exits non-zero with the stop message and writes no final/', async () => {
  const world = await medsynthWorld(200);
  const out = path.join(tempDir('nonfinite-cli'), 'run');
  const r = runCli([
    'sft',
    '--model',
    'tiny-qwen2-vl',
    '--data',
    path.join(world, 'medsynth.jsonl'),
    '--task',
    'Modality Recognition',
    '--out',
    out,
    '--lr',
    '1e9',
    '--warmup-steps',
    '1',
    '--max-steps',
    '10',
    '--max-skipped-steps',
    '2',
    '--token-budget',
    '600',
    '--threads',
    '1',
  ]);
  assert.notEqual(r.status, 0, `exit status ${r.status}; stdout ${r.stdout}`);
  assert.match(
    r.stderr,
    /sft: stopped at step \d+ after 2 consecutive skipped updates .*: the (loss|gradient norm) was/,
  );
  assert.match(r.stderr, /sft: step \d+: the (loss|gradient norm) was .*, the update was skipped/);
  assert.equal(r.stdout, '', 'no summary line');
  assert.ok(!fs.existsSync(path.join(out, 'final')), 'no final/ folder');
});
