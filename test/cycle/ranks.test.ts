// The cycle on 2 ranks (`medgr2 launch --nproc-per-node 2 cycle`, Gloo over loopback): every stage
// finishes, every record is written exactly once, in the order one process writes it, and the report
// comes out once; plus the batch split itself (whole batches, round-robin over the ranks).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { defaultCycleConfig, type CycleConfig } from '../../src/cycle/config';
import type { Candidate, RunManifest, ScoredCandidate } from '../../src/data/proto';
import { readMessageFile } from '../../src/data/record_files';
import { batchShare } from '../../src/util/batch_runner';
import { runCli } from '../helpers/cli';
import { tempDir } from '../helpers/temp_dir';
import { freePort } from '../dist/ranks';

test('batchShare: whole batches, batch k on rank k mod N, every item once', () => {
  assert.deepEqual(batchShare(10, 3, 0, 2), [0, 1, 2, 6, 7, 8]);
  assert.deepEqual(batchShare(10, 3, 1, 2), [3, 4, 5, 9]);
  assert.deepEqual(batchShare(2, 4, 1, 2), []);
  for (const [n, bs, w] of [
    [0, 4, 3],
    [7, 1, 3],
    [64, 64, 2],
    [65, 8, 5],
  ]) {
    const all = Array.from({ length: w }, (_, r) => batchShare(n, bs, r, w)).flat();
    assert.deepEqual(
      all.sort((a, b) => a - b),
      Array.from({ length: n }, (_, i) => i),
      `n ${n} bs ${bs} w ${w}`,
    );
  }
});

function tinyCycle(): Partial<CycleConfig> {
  const d = defaultCycleConfig();
  return {
    rounds: 1,
    world: { ...d.world, seedImages: 6, poolImages: 5, testImages: 8, seedModalities: ['CT', 'MRI'] },
    // batches of 4 over 10 candidates: rank 0 runs batches 0 and 2, rank 1 batch 1
    generate: { ...d.generate, perImage: 2, batchSize: 4, maxNewTokens: 24 },
    pretrain: { ...d.pretrain, images: 8, steps: 2 },
    warmup: { ...d.warmup, generatorSteps: 2, judgeSteps: 2 },
    coDevelop: { ...d.coDevelop, generatorSteps: 1, judgeSteps: 1 },
    policySft: { ...d.policySft, steps: 2 },
    grpo: { ...d.grpo, steps: 1, promptsPerStep: 3, groupSize: 2 },
    eval: { maxNewTokens: 4 },
  };
}

test(
  'medgr2 launch --nproc-per-node 2 cycle: one round, every record once, in order, one report',
  { timeout: 300_000 },
  async () => {
    const dir = tempDir('cycle-ranks');
    const cfgFile = path.join(dir, 'tiny.json');
    fs.writeFileSync(cfgFile, JSON.stringify(tinyCycle()));
    const out = path.join(dir, 'run');
    const r = runCli([
      'launch',
      '--nproc-per-node',
      '2',
      '--master-port',
      String(await freePort()),
      'cycle',
      '--config',
      cfgFile,
      '--out',
      out,
      '--zero',
      '1',
    ]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /cycle: data parallel over 2 ranks \(backend gloo, .*ZeRO-1\)/);
    // rank 0 alone reports: the final table once, and no line of rank 1's but errors would be there
    assert.equal(r.stdout.match(/report: /g)?.length, 1, r.stdout);
    assert.doesNotMatch(r.stdout + r.stderr, /\[rank 1\] /);
    for (const f of fs.readdirSync(path.join(out, 'manifests'))) {
      const m = readMessageFile<RunManifest>(path.join(out, 'manifests', f)).messages;
      assert.equal(m.length, 1, `${f}: one manifest record`);
      assert.equal(m[0].status, 'SUCCEEDED', f);
    }
    const cands = readMessageFile<Candidate>(path.join(out, 'round-1', 'candidates.rec')).messages;
    const want = Array.from({ length: 5 }, (_, i) => [0, 1].map((k) => `g1-${i}-${k}`)).flat();
    assert.deepEqual(
      cands.map((c) => c.sample.id),
      want,
      'every candidate once, in pool order',
    );
    const scored = readMessageFile<ScoredCandidate>(path.join(out, 'round-1', 'scored.rec')).messages;
    assert.deepEqual(
      scored.map((s) => s.candidate.sample.id),
      want,
    );
    for (const s of scored) if (s.candidate.valid) assert.ok(s.reward > 0 && s.reward < 1, `judge reward ${s.reward}`);
    const described = JSON.parse(fs.readFileSync(path.join(out, 'data', 'pool-described.json'), 'utf8')) as {
      description: string;
    }[];
    assert.equal(described.length, 5);
    assert.ok(described.every((d) => typeof d.description === 'string'));
    assert.ok(fs.existsSync(path.join(out, 'report.json')));
    assert.ok(!fs.existsSync(path.join(out, '.ranks')) || fs.readdirSync(path.join(out, '.ranks')).length === 0);
  },
);
