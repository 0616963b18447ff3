// `medgr2 cycle --model DIR` end to end on the CPU, as a user runs it on their own model and data: the
// tiny real-vocabulary Qwen2.5-VL (Qwen's tokenizer, 151,936 rows, random weights: accuracy is beside
// the point), a seed of OmniMedVQA JSON records over PNG images, and a pool folder of PNG and DICOM
// files, with a config of tiny step counts. One round writes every stage's records, manifests and the
// report; a second run, SIGKILLed inside a stage, finishes with --resume without redoing what was done.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import type { Candidate, RunManifest, Sample, ScoredCandidate } from '../../src/data/proto';
import { readMessageFile, readSamples } from '../../src/data/record_files';
import { cliPath } from '../helpers/cli';
import { greyImage, SYNTAX, writeDicom } from '../helpers/dicom';
import { makeRealVocabModel } from '../helpers/real_vocab_model';
import { tempDir } from '../helpers/temp_dir';

/** An RGB PNG of w×h with a seeded pattern. */
async function png(file: string, w: number, h: number, seed: number): Promise<void> {
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * (seed + 7) + seed * 31) % 251;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(file);
}

interface Fixture {
  model: string;
  seedFile: string;
  pool: string;
  config: string;
}

/** OmniMedVQA's layout: QA records (a JSON array) beside Images/<dataset>/..., and a pool folder. */
async function fixture(root: string): Promise<Fixture> {
  const model = await makeRealVocabModel(path.join(root, 'Qwen2.5-VL-tiny'));
  const omni = path.join(root, 'OmniMedVQA');
  const records: Record<string, string>[] = [];
  const kinds = [
    { dataset: 'Chest X-Ray', modality: 'X-Ray', options: ['Pneumonia', 'Normal', 'Effusion', 'Nodule'] },
    {
      dataset: 'Brain MRI',
      modality: 'MR (Mag-netic Resonance Imaging)',
      options: ['Glioma', 'Normal', 'Meningioma', 'Pituitary tumor'],
    },
  ];
  for (let i = 0; i < 10; i++) {
    const k = kinds[i % 2];
    const image = `Images/${k.dataset}/${i}.png`;
    await png(path.join(omni, image), 40 + 8 * i, 56 + 4 * (i % 3), i);
    const recognition = i % 3 === 2;
    const options = recognition ? ['CT', 'X-Ray', 'MRI', 'Ultrasound'] : k.options;
    records.push({
      dataset: k.dataset,
      question_id: `${k.dataset.replace(/ /g, '_')}_${i}`,
      question_type: recognition ? 'Modality Recognition' : 'Disease Diagnosis',
      question: recognition ? 'What imaging modality was used to take this image?' : 'What abnormality is shown?',
      gt_answer: recognition ? (k.modality === 'X-Ray' ? 'X-Ray' : 'MRI') : options[i % 4],
      image_path: image,
      option_A: options[0],
      option_B: options[1],
      option_C: options[2],
      option_D: options[3],
      modality_type: k.modality,
    });
  }
  const seedFile = path.join(omni, 'Open-access-demo.json');
  fs.writeFileSync(seedFile, JSON.stringify(records, null, 2));

  const pool = path.join(root, 'pool');
  await png(path.join(pool, 'a.png'), 64, 48, 11);
  await png(path.join(pool, 'b.png'), 90, 90, 12);
  const pixels = Array.from({ length: 64 * 72 }, (_, i) => (i * 13) % 4096);
  fs.writeFileSync(
    path.join(pool, 'c.dcm'),
    writeDicom({ syntax: SYNTAX.explicitLE, elements: greyImage({ rows: 64, cols: 72, bits: 16, pixels }) }),
  );

  const config = path.join(root, 'tiny-steps.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      rounds: 1,
      // 0.1 MiB of KV cache: a few sequences per generate call (the batch sizes are logged)
      generate: { perImage: 2, maxNewTokens: 12, batchSize: 8, memoryBudgetMiB: 0.1 },
      coDevelop: { generatorSteps: 1, judgeSteps: 1 },
      policySft: { steps: 2, tokenBudget: 2048 },
      grpo: { steps: 1, promptsPerStep: 2, groupSize: 2 },
      eval: { maxNewTokens: 8 },
      tokenBudget: 2048,
    }),
  );
  return { model, seedFile, pool, config };
}

function args(f: Fixture, out: string): string[] {
  return ['cycle', '--model', f.model, '--seed-data', f.seedFile, '--pool', f.pool, '--config', f.config, '--out', out];
}

function status(file: string): string {
  const m = readMessageFile<RunManifest>(file, { expect: 'medgr2.RunManifest' }).messages;
  return m[m.length - 1].status;
}

const ROUND_STAGES = [
  'generate',
  'score',
  'select',
  'judge-eval',
  'co-develop-generator',
  'co-develop-judge',
  'policy-sft',
  'policy-grpo',
  'eval',
  'round-summary',
];

/** Every stage of a finished run: its manifest SUCCEEDED, its records there, and the report. */
function checkFinishedRun(out: string): void {
  const manifests = fs.readdirSync(path.join(out, 'manifests')).sort();
  const want = [
    'world',
    'init',
    'eval-base',
    'sft-seed',
    'eval-sft-seed',
    ...ROUND_STAGES.map((s) => `round-1-${s}`),
  ].map((s) => `${s}.rec`);
  assert.deepEqual(manifests, [...want].sort(), 'no pretrain, describe-pool or warm-ups with --model');
  for (const f of manifests) assert.equal(status(path.join(out, 'manifests', f)), 'SUCCEEDED', f);

  const seed = readSamples(path.join(out, 'data', 'seed.rec')).messages as Sample[];
  assert.equal(seed.length, 8);
  assert.equal(seed[0].provenance.sourceFormat, 'omnimedvqa');
  assert.equal(readSamples(path.join(out, 'data', 'test-inDomain.rec')).messages.length, 2);
  const pool = JSON.parse(fs.readFileSync(path.join(out, 'data', 'pool.json'), 'utf8')) as { image: string }[];
  assert.deepEqual(
    pool.map((x) => path.basename(x.image)),
    ['a.png', 'b.png', 'c.dcm'],
  );

  const cands = readMessageFile<Candidate>(path.join(out, 'round-1', 'candidates.rec')).messages;
  assert.equal(cands.length, 3 * 2);
  assert.ok(
    cands.every((c) => c.raw.length > 0 || c.invalidReason),
    'every reply kept, raw',
  );
  const ids = cands.map((c) => c.sample.id);
  assert.equal(new Set(ids).size, ids.length);
  const scored = readMessageFile<ScoredCandidate>(path.join(out, 'round-1', 'scored.rec')).messages;
  assert.equal(scored.length, cands.length);
  const selected = readMessageFile<ScoredCandidate>(path.join(out, 'round-1', 'selected.rec')).messages;
  assert.equal(selected.length, cands.length, 'selection keeps every candidate on disk');
  const judge = JSON.parse(fs.readFileSync(path.join(out, 'round-1', 'judge-eval.json'), 'utf8'));
  assert.ok(judge.pairs > 0 && judge.auc >= 0 && judge.auc <= 1, JSON.stringify(judge));
  for (const m of ['init', 'policy-sft-seed', 'generator-2', 'judge-2', 'policy-sft-1', 'policy-grpo-1'])
    assert.ok(fs.existsSync(path.join(out, 'models', m, 'config.json')), m);
  for (const m of ['generator-1', 'judge-1', 'random'])
    assert.ok(!fs.existsSync(path.join(out, 'models', m)), `${m}: round 1's roles are models/init itself`);
  for (const e of ['base', 'sftSeed', 'sftCycle-round-1', 'grpoCycle-round-1']) {
    const rec = JSON.parse(fs.readFileSync(path.join(out, 'eval', `${e}.json`), 'utf8'));
    assert.equal(rec.sets.inDomain.overall.total, 2, e);
  }
  const round = JSON.parse(fs.readFileSync(path.join(out, 'round-1', 'round.json'), 'utf8'));
  assert.equal(round.candidates, 6);
  assert.equal(round.policySftLoss.length, 2);
  assert.equal(round.grpoMeanReward.length, 1);
  assert.match(fs.readFileSync(path.join(out, 'report.md'), 'utf8'), /Final comparison/);
  assert.ok(fs.existsSync(path.join(out, 'report.json')));
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  assert.equal(cfg.generatorPrompt, 'metacognitive');
  assert.equal(cfg.warmup.generatorSteps, 0, 'the instruct defaults under the file');
  assert.equal(cfg.grpo.steps, 1, 'the file over them');
}

test('medgr2 cycle --model on OmniMedVQA JSON and a PNG + DICOM pool: one round end to end, then a killed run resumed', async () => {
  const root = tempDir('real-cycle');
  const f = await fixture(root);

  // 1. one round, uninterrupted
  const out = path.join(root, 'run');
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [cliPath, ...args(f, out)], { encoding: 'utf8', timeout: 240_000 });
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(r.status, 0, `exit ${r.status}\n${r.stderr.slice(-4000)}`);
  console.log(`one round: ${seconds.toFixed(1)} s`);
  checkFinishedRun(out);
  const log = r.stderr;
  assert.match(
    log,
    /instruct recipe: generator prompt metacognitive, policy answers with the option's text, images 3136-12544 pixels; warm-ups: none/,
  );
  for (const what of ['generate', 'eval', 'grpo rollouts'])
    assert.match(log, new RegExp(`batch size, ${what}: \\d+ sequences \\(.* MiB of KV cache each`), what);
  assert.match(log, /batch size, judge: \d+ prompts per forward pass/);
  assert.equal(log.match(/batch size, generate:/g)?.length, 1, 'logged once');
  // progress with rate and ETA from every stage that works through items or steps
  for (const what of [
    'world: pool images read',
    'init',
    'round 1 generate',
    'round 1 score',
    'round 1 judge-eval',
    'round 1 policy-sft',
    'round 1 grpo',
    'eval base',
  ])
    assert.match(log, new RegExp(`${what}.* \\d+/\\d+ \\([\\d.]+/s, eta \\d+ s\\)`), what);
  assert.match(r.stdout, /report: .*report\.md/);

  // 2. killed inside a stage (sft-seed has started), then --resume
  const out2 = path.join(root, 'killed');
  const child = spawn(process.execPath, [cliPath, ...args(f, out2)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const started = path.join(out2, 'manifests', 'sft-seed.rec');
  const deadline = Date.now() + 120_000;
  while (!fs.existsSync(started)) {
    if (Date.now() > deadline || child.exitCode !== null) break;
    await new Promise((res) => setTimeout(res, 25));
  }
  assert.ok(fs.existsSync(started), `sft-seed never started\n${stderr.slice(-3000)}`);
  child.kill('SIGKILL');
  await exited;
  assert.equal(status(path.join(out2, 'manifests', 'world.rec')), 'SUCCEEDED');
  assert.equal(status(path.join(out2, 'manifests', 'init.rec')), 'SUCCEEDED');
  assert.ok(!fs.existsSync(path.join(out2, 'report.md')));
  const worldAt = readMessageFile<RunManifest>(path.join(out2, 'manifests', 'world.rec')).messages[0].startedAt;

  const again = spawnSync(process.execPath, [cliPath, ...args(f, out2)], { encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(again.status, 0, 'without --resume the folder is refused');
  assert.match(again.stderr, /pass --resume/);
  const resumed = spawnSync(process.execPath, [cliPath, ...args(f, out2), '--resume'], {
    encoding: 'utf8',
    timeout: 240_000,
  });
  assert.equal(resumed.status, 0, `exit ${resumed.status}\n${resumed.stderr.slice(-4000)}`);
  for (const kept of ['world', 'init', 'eval-base'])
    assert.match(resumed.stderr, new RegExp(`\\] ${kept}: finished earlier, kept`));
  assert.match(resumed.stderr, /\] sft-seed: done in/);
  assert.equal(readMessageFile<RunManifest>(path.join(out2, 'manifests', 'world.rec')).messages[0].startedAt, worldAt);
  checkFinishedRun(out2);
  // the same seed and config: the resumed run's records are the uninterrupted run's
  for (const rel of ['data/seed.rec', 'round-1/candidates.rec'])
    assert.deepEqual(fs.readFileSync(path.join(out2, rel)), fs.readFileSync(path.join(out, rel)), rel);
});
