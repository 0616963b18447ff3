// GRPO on 2 ranks (`medgr2 launch --nproc-per-node 2 grpo`, Gloo over loopback) against one process on
// the same prompts and seed: every rollout is seeded by its prompt's position, every rank learns every
// group's rewards, and the gradients are summed, so the per-step rewards, groups kept and trained
// tokens must be equal, and the losses, KL and final weights equal up to float rounding -- with a
// reference model (beta > 0), dynamic sampling, an odd number of prompts per step (rank 0 holds two
// groups, rank 1 one), and ZeRO-0 and ZeRO-2.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { readMetrics } from '../../src/report/metrics';
import { runCli } from '../helpers/cli';
import { medsynthWorld } from '../helpers/world';
import { tempDir } from '../helpers/temp_dir';
import { freePort } from '../dist/ranks';
import { maxWeightDiff } from '../helpers/run_files';

function stepMetrics(out: string): Record<string, number>[] {
  return readMetrics(path.join(out, 'metrics.jsonl')) as unknown as Record<string, number>[];
}

test(
  'medgr2 launch --nproc-per-node 2 grpo (ZeRO 0 and 2) repeats the one-process run',
  { timeout: 240_000 },
  async (t) => {
    const world = await medsynthWorld(40);
    const dir = tempDir('grpo-dist');
    // A reward with spread on a random model: the completion's length (so groups are rarely all equal).
    const mod = path.join(dir, 'length.cjs');
    fs.writeFileSync(mod, 'exports.length = (c) => c.length / 20;\n');
    const args = [
      'grpo',
      '--model',
      'tiny-qwen2-vl',
      '--data',
      path.join(world, 'medsynth.jsonl'),
      '--limit',
      '9',
      '--steps',
      '3',
      '--prompts-per-step',
      '3',
      '--group-size',
      '4',
      '--max-new-tokens',
      '6',
      '--lr',
      '1e-3',
      '--beta',
      '0.04',
      '--dynamic-sampling',
      '--reward-module',
      mod,
      '--reward-weights',
      'accuracy=1,format=0.5,length=1',
      '--seed',
      '1',
      '--threads',
      '1',
    ];
    const single = path.join(dir, 'single');
    const r1 = runCli([...args, '--out', single]);
    assert.equal(r1.status, 0, r1.stderr);
    const want = stepMetrics(single);
    assert.equal(want.length, 3);
    assert.ok(
      want.some((m) => m['tokens/trained'] > 0),
      'some step trains',
    );
    for (const zero of [0, 2]) {
      const out = path.join(dir, `zero${zero}`);
      const r = runCli([
        'launch',
        '--nproc-per-node',
        '2',
        '--master-port',
        String(await freePort()),
        ...args,
        '--zero',
        String(zero),
        '--out',
        out,
      ]);
      assert.equal(r.status, 0, `zero ${zero}: ${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`grpo: data parallel over 2 ranks .*ZeRO-${zero}`));
      const got = stepMetrics(out);
      assert.equal(got.length, want.length, `zero ${zero}: rank 0 alone logs, once per step`);
      for (const [i, w] of want.entries()) {
        const g = got[i];
        for (const key of ['train/reward', 'groups/kept', 'groups/dropped', 'tokens/completion', 'tokens/trained'])
          assert.equal(g[key], w[key], `zero ${zero} step ${w.step}: ${key}`);
        for (const key of ['train/loss', 'train/kl', 'train/entropy'])
          assert.ok(
            Math.abs(g[key] - w[key]) <= 1e-6 + 1e-4 * Math.abs(w[key]),
            `zero ${zero} step ${w.step}: ${key} ${g[key]} vs one process ${w[key]}`,
          );
      }
      const diff = maxWeightDiff(single, out);
      t.diagnostic(`ZeRO-${zero}: max |w_single - w_2ranks| = ${diff.toExponential(2)}`);
      assert.ok(diff < 5e-5, `zero ${zero}: final weights differ by ${diff}`);
    }
  },
);
