// The cycle end to end on a very small MedSynth world: one round writes every stage's records and
// manifest and the report; a run killed inside a stage resumes and ends with every record exactly
// once; bad input fails with a clear error and keeps the stages already finished.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Cycle } from '../../src/cycle/cycle';
import { tinyRun } from '../helpers/cycle_runs';
import type { Candidate, RunManifest, ScoredCandidate } from '../../src/data/proto';
import { readMessageFile, readSamples, writeMessageFileAtomic } from '../../src/data/record_files';
import { runCycleWithAblations, STUDY, type StudyOptions } from '../../src/cycle/ablations';
import { tempDir } from '../helpers/temp_dir';

const quiet = { log: () => {} };

function status(file: string): string {
  return readMessageFile<RunManifest>(file, { expect: 'medgr2.RunManifest' }).messages[0].status;
}

test('one round end to end: every stage finishes with its records, manifest and the report', async () => {
  const out = tempDir('cycle1');
  const { main } = await runCycleWithAblations(tinyRun(out), {}, { log: () => {} });
  for (const f of fs.readdirSync(path.join(out, 'manifests')))
    assert.equal(status(path.join(out, 'manifests', f)), 'SUCCEEDED', f);
  const cands = readMessageFile<Candidate>(path.join(out, 'round-1', 'candidates.rec')).messages;
  assert.equal(cands.length, 4 * 2);
  const sel = readMessageFile<ScoredCandidate>(path.join(out, 'round-1', 'selected.rec')).messages;
  assert.equal(sel.length, cands.length, 'selection keeps every candidate on disk');
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  assert.deepEqual(Object.keys(report.final).sort(), ['base', 'grpoCycle', 'sftCycle', 'sftSeed']);
  for (const arm of Object.values(report.final) as Record<string, number | null>[])
    assert.deepEqual(Object.keys(arm), ['inDomain', 'heldOutModality', 'heldOutTask']);
  assert.equal(report.rounds[0].candidates, 8);
  assert.equal(report.claims.length, 2);
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.match(md, /Final comparison/);
  assert.match(md, /claim (holds|does NOT hold)/);
  assert.ok(fs.statSync(path.join(out, 'plots', 'final.png')).size > 100);
  assert.equal(main.rounds.length, 1);
  // a second run without --resume refuses the folder
  await assert.rejects(new Cycle(tinyRun(out), quiet).run(), /pass --resume/);
});

/**
 * The tiny study: the graded reward model (a score head) as the judge and the paper's GRPO reward on it.
 * Two generator warm-up steps write no valid sample; round 1's candidates are replaced (once, in the
 * main chain) by valid ones on the pool's images, so selection keeps its top 4 and the study has arms.
 */
async function tinyStudy(out: string, opts: StudyOptions = {}) {
  const cfg = tinyRun(out, { rewardModel: 'graded', grpo: { ...tinyRun(out).grpo, reward: 'reward-model' } });
  const lines: string[] = [];
  let replaced = false;
  const beforeStage = (stage: string, round: number) => {
    if (stage !== 'score' || round !== 1 || replaced) return;
    replaced = true;
    const seed = readSamples(path.join(out, 'data', 'seed.rec')).messages;
    const pool = JSON.parse(fs.readFileSync(path.join(out, 'data', 'pool.json'), 'utf8')) as { image: string }[];
    const cands: Candidate[] = pool.map((img, i) => ({
      sample: { ...seed[i % seed.length], id: `g${i}`, images: [img.image] },
      generatorRound: 1,
      valid: true,
      invalidReason: '',
      raw: '',
    }));
    writeMessageFileAtomic(path.join(out, 'round-1', 'candidates.rec'), 'medgr2.Candidate', cands);
  };
  const { text } = await runCycleWithAblations(cfg, STUDY, { log: (l) => lines.push(l), beforeStage }, undefined, opts);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  return { text, lines, replaced, report };
}

test('the study: both ablations, the data-efficiency arms, the graded reward model and the paper GRPO reward, in one report', async () => {
  const out = tempDir('cycle-study');
  const { text, lines, replaced, report } = await tinyStudy(out, { parallelLanes: true });
  assert.ok(replaced);
  assert.ok(
    lines.some((l) => /grpo reward: 0\.8 x reward_model \+ 0\.2 x exact_match \+ 0\.1 x format/.test(l)),
    'the paper reward is used and logged',
  );
  assert.ok(
    lines.some((l) => /warmup-judge: graded reward model, 2 steps on \d+ graded pairs/.test(l)),
    'the judge is the graded reward model',
  );
  const judgeConfig = JSON.parse(fs.readFileSync(path.join(out, 'models', 'judge-1', 'config.json'), 'utf8'));
  assert.equal(judgeConfig.num_labels, 1, 'the judge folder holds its score head');
  for (const arm of ['noRewardFilterSftCycle', 'noRewardFilterGrpoCycle', 'noCoEvolveSftCycle', 'noCoEvolveGrpoCycle'])
    assert.ok(report.final[arm], arm);
  // round 1 kept topK 4: sizes 1, 2, 4, each top-k and random
  assert.deepEqual(
    report.efficiency.map((r: { size: number; ranking: string }) => `${r.ranking}${r.size}`),
    ['top-k1', 'random1', 'top-k2', 'random2', 'top-k4', 'random4'],
  );
  const names = report.mechanisms.map((c: { name: string }) => c.name);
  assert.ok(names.includes('reward filtering beats random selection'), names.join(' | '));
  assert.ok(names.includes('co-evolution beats a frozen generator and judge'));
  assert.ok(names.includes('the top-k samples by reward beat a random subset of the same size'));
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.match(md, /## The method's mechanisms on this run/);
  assert.match(md, /## Data efficiency/);
  assert.ok(fs.statSync(path.join(out, 'plots', 'efficiency.png')).size > 100);
  assert.match(text, /The method's mechanisms:/);
});

test("the study's two lanes side by side give the numbers of one lane after the other", async () => {
  const apart = await tinyStudy(tempDir('cycle-study-serial'));
  const together = await tinyStudy(tempDir('cycle-study-lanes'), { parallelLanes: true });
  assert.ok(Object.keys(apart.report.final).length >= 8);
  assert.deepEqual(together.report.final, apart.report.final);
  assert.deepEqual(together.report.efficiency, apart.report.efficiency);
  assert.deepEqual(together.report.mechanisms, apart.report.mechanisms);
});

test('stages side by side: a stage failing in one lane lets the other lane finish; --resume completes the run', async () => {
  const out = tempDir('cycle-lanes');
  const lanes = { parallelLanes: true };
  const beforeStage = (stage: string, round: number) => {
    if (stage === 'co-develop-generator' && round === 1) throw new Error('injected failure in the co-develop lane');
  };
  await assert.rejects(
    new Cycle(tinyRun(out), { log: () => {}, beforeStage }, undefined, lanes).run(),
    /injected failure in the co-develop lane/,
  );
  const manifest = (name: string) => path.join(out, 'manifests', `${name}.rec`);
  assert.equal(status(manifest('round-1-co-develop-generator')), 'FAILED');
  assert.ok(!fs.existsSync(manifest('round-1-co-develop-judge')), 'its lane stopped at the failure');
  // the other lane of round 1 (started beside it, and longer) ran to its end before the error came
  for (const done of ['round-1-policy-sft', 'round-1-policy-grpo', 'round-1-eval', 'warmup-generator', 'warmup-judge'])
    assert.equal(status(manifest(done)), 'SUCCEEDED', done);
  const resumed = await new Cycle({ ...tinyRun(out), resume: true }, quiet, undefined, lanes).run();
  assert.equal(resumed.rounds.length, 1);
  assert.equal(status(manifest('round-1-co-develop-judge')), 'SUCCEEDED');
});

test('killed during a stage, --resume finishes without redoing finished stages; every record exactly once', async () => {
  const out = tempDir('cycle-kill');
  let kills = 0;
  const killAt = (stage: string) => async (s: string) => {
    if (s === stage && kills++ === 0) throw new Error('simulated kill');
  };
  await assert.rejects(new Cycle(tinyRun(out), { ...quiet, beforeStage: killAt('score') }).run(), /simulated kill/);
  assert.equal(status(path.join(out, 'manifests', 'round-1-score.rec')), 'FAILED');
  const genManifest = readMessageFile<RunManifest>(path.join(out, 'manifests', 'round-1-generate.rec')).messages[0];
  assert.equal(genManifest.status, 'SUCCEEDED');
  const before = fs.readFileSync(path.join(out, 'round-1', 'candidates.rec'));

  const ran: string[] = [];
  await new Cycle(tinyRun(out, { resume: true }), {
    ...quiet,
    beforeStage: (s, r) => void ran.push(`${r}:${s}`),
  }).run();
  assert.ok(
    !ran.includes('1:generate') && !ran.includes('0:warmup-judge'),
    `finished stages are not redone (ran ${ran.join(', ')})`,
  );
  assert.ok(ran.includes('1:score'));
  assert.deepEqual(fs.readFileSync(path.join(out, 'round-1', 'candidates.rec')), before, 'generate output untouched');
  assert.equal(
    readMessageFile<RunManifest>(path.join(out, 'manifests', 'round-1-generate.rec')).messages[0].startedAt,
    genManifest.startedAt,
  );
  for (const f of ['candidates.rec', 'scored.rec', 'selected.rec']) {
    const ids = readMessageFile<{ sample?: { id: string }; candidate?: { sample: { id: string } } }>(
      path.join(out, 'round-1', f),
    ).messages.map((m) => (m.candidate ?? m).sample!.id);
    assert.equal(ids.length, 8, f);
    assert.equal(new Set(ids).size, ids.length, `${f}: every record exactly once`);
  }
  for (const f of fs.readdirSync(path.join(out, 'manifests')))
    assert.equal(status(path.join(out, 'manifests', f)), 'SUCCEEDED', f);
});

test('bad input: a clear error, and the stages already finished are kept', async () => {
  // a model folder without a tokenizer: the world is made, then init fails
  const noTok = tempDir('notok');
  fs.writeFileSync(path.join(noTok, 'config.json'), '{}');
  const out1 = tempDir('bad-model');
  // (an instruct run's generate group: the default one's task card is for the default recipe)
  const instruct = tinyRun(out1, { model: noTok });
  instruct.generate = { ...instruct.generate, taskCards: undefined };
  await assert.rejects(new Cycle(instruct, quiet).run(), /no tokenizer\.json/);
  assert.equal(status(path.join(out1, 'manifests', 'world.rec')), 'SUCCEEDED', 'the finished world stage is kept');
  assert.equal(status(path.join(out1, 'manifests', 'init.rec')), 'FAILED');
  assert.ok(fs.existsSync(path.join(out1, 'data', 'seed.rec')));

  // a seed file with no labels
  const dir = tempDir('bad-seed');
  const unlabelled = path.join(dir, 'seed.jsonl');
  fs.writeFileSync(
    unlabelled,
    JSON.stringify({
      question_id: 'q1',
      question: 'What modality?',
      image_path: 'a.png',
      option_A: 'CT',
      option_B: 'MRI',
      option_C: 'OCT',
      option_D: 'X-Ray',
      modality_type: 'CT',
      question_type: 'Modality Recognition',
    }) + '\n',
  );
  fs.mkdirSync(path.join(dir, 'pool'));
  const { encodePng } = await import('../../src/data/medsynth/world');
  fs.writeFileSync(path.join(dir, 'pool', 'ok.png'), await encodePng(new Uint8Array(56 * 56 * 3).fill(90), 56));
  await assert.rejects(
    new Cycle(tinyRun(tempDir('bad-seed-out'), { seedData: unlabelled, pool: path.join(dir, 'pool') }), quiet).run(),
    /--seed-data.*(answer|labelled)/s,
  );

  // an unreadable pool image, named in the error
  const labelled = path.join(dir, 'labelled.jsonl');
  fs.writeFileSync(
    labelled,
    Array.from({ length: 5 }, (_, i) =>
      JSON.stringify({
        question_id: `q${i}`,
        question: 'What modality?',
        image_path: 'pool/ok.png',
        gt_answer: 'CT',
        option_A: 'CT',
        option_B: 'MRI',
        option_C: 'OCT',
        option_D: 'X-Ray',
        modality_type: 'CT',
        question_type: 'Modality Recognition',
      }),
    ).join('\n') + '\n',
  );
  fs.writeFileSync(path.join(dir, 'pool', 'broken.png'), 'not a png');
  await assert.rejects(
    new Cycle(tinyRun(tempDir('bad-pool-out'), { seedData: labelled, pool: path.join(dir, 'pool') }), quiet).run(),
    /pool: .*broken\.png/,
  );
});
