// The cycle report's charts, rendered from a small synthetic run: every SVG shows its title, axis
// titles, legend and values; every PNG is drawn; report.md shows them and explains no colours in
// prose; the reward histogram splits kept from dropped (or says the round did not record it).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EvalRecord, RoundRecord, TestSetName } from '../../src/cycle/cycle';
import type { ScoreResult } from '../../src/eval/scorer';
import { buildCycleReport, writeCycleReport } from '../../src/cycle/report';
import { REWARD_BINS } from '../../src/cycle/report_charts';
import { assertPngOfSvg, assertSvgShows } from '../helpers/charts';
import { tempDir } from '../helpers/temp_dir';

const g = (correct: number, total: number) => ({ correct, total, accuracy: correct / total });
const score = (c: number, t: number): ScoreResult => ({
  overall: g(c, t),
  byModality: { CT: g(c, t) },
  byTask: { 'Modality Recognition': g(c, t) },
  byDataset: {},
  invalid: 0,
  macroF1: 0,
  unknown: 0,
  missing: 0,
});
function evalRec(arm: string, round: number, correct: Partial<Record<TestSetName, number>>): EvalRecord {
  const totals: Record<TestSetName, number> = { inDomain: 72, heldOutModality: 36, heldOutTask: 9 };
  return {
    arm,
    round,
    sets: Object.fromEntries(Object.entries(correct).map(([s, c]) => [s, score(c, totals[s as TestSetName])])),
  };
}
function roundRec(round: number, valid: number[], kept: number[] | undefined): RoundRecord {
  return {
    round,
    candidates: 64,
    valid: valid.length,
    kept: kept?.length ?? 0,
    rewards: valid,
    rewardsValid: valid,
    rewardsKept: kept,
    judge: { accuracy: 0.6 + 0.1 * round, auc: 0.7, pairs: 40 },
    invalidReasons: {},
    generatorSteps: 1,
    judgeSteps: 1,
    policySftLoss: [],
    grpoMeanReward: [],
  };
}

test('cycle report charts: titles, axis titles, legends and values in every SVG; PNGs drawn; report.md shows them', async () => {
  const r1Valid = [0.05, 0.15, 0.15, 0.55, 0.82, 0.91, 0.95];
  const r2Valid = [0.35, 0.62, 0.88, 0.93, 0.97, 0.99];
  const rounds = [roundRec(1, r1Valid, [0.91, 0.95]), roundRec(2, r2Valid, [0.93, 0.97, 0.99])];
  const arms = {
    base: evalRec('base', 0, { inDomain: 18, heldOutModality: 9, heldOutTask: 2 }),
    sftSeed: evalRec('sftSeed', 0, { inDomain: 30, heldOutModality: 14, heldOutTask: 3 }),
    sftCycle: evalRec('sftCycle', 2, { inDomain: 38, heldOutModality: 17, heldOutTask: 4 }),
    grpoCycle: evalRec('grpoCycle', 2, { inDomain: 41, heldOutModality: 20 }), // not evaluated on heldOutTask
  };
  const perRound = [1, 2].flatMap((r) => [
    evalRec('sftCycle', r, { inDomain: 30 + 4 * r }),
    evalRec('grpoCycle', r, { inDomain: 33 + 4 * r }),
  ]);
  const out = tempDir('report-charts');
  const report = buildCycleReport(rounds, arms, perRound, 12);
  const md = await writeCycleReport(out, report);

  assert.deepEqual(
    report.rounds.map((r) => r.reward.histogramKept),
    [
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 3],
    ],
  );
  assert.deepEqual(
    report.rounds[0].reward.histogram,
    [1, 2, 0, 0, 0, 1, 0, 0, 1, 2],
    'the histogram of all valid candidates is as before',
  );

  const svg = (name: string) => fs.readFileSync(path.join(out, 'plots', `${name}.svg`), 'utf8');
  const armNames = ['base', 'sftSeed', 'sftCycle', 'grpoCycle'];
  assertSvgShows(
    svg('final'),
    [
      'Final comparison: accuracy by test set and arm',
      'test set',
      'accuracy (%)',
      'inDomain',
      'heldOutModality',
      'heldOutTask',
      'arm',
      ...armNames,
      '56.9',
      '25.0',
      'n/a',
      '100',
    ],
    'final',
  );
  assertSvgShows(
    svg('rounds'),
    [
      'Candidates per round',
      'cycle round',
      'candidates (count)',
      'round 1',
      'round 2',
      'candidates',
      'generated',
      'valid',
      'kept',
      '64',
      '7',
      '3',
    ],
    'rounds',
  );
  assertSvgShows(
    svg('judge'),
    [
      'Generator and judge per round',
      'cycle round',
      'percent (%)',
      'measure',
      'generator validity %',
      'kept % of generated',
      'judge pair accuracy %',
      'judge AUC × 100',
      'mean reward (valid) × 100',
      '70.0',
      '80.0',
    ],
    'judge',
  );
  assertSvgShows(
    svg('policy'),
    ['Policy accuracy per round', 'cycle round', 'accuracy (%)', 'arm', 'sftCycle', 'grpoCycle', '47.2', '56.9'],
    'policy',
  );
  assertSvgShows(
    svg('rewards'),
    [
      'Judge reward of the valid candidates, per round',
      'judge reward (0–1), bins of 0.1',
      'candidates (count)',
      'selection',
      'kept',
      'dropped',
      'round 1',
      'round 2',
      ...REWARD_BINS,
      '2',
      '3',
    ],
    'rewards',
  );
  for (const name of ['final', 'rounds', 'judge', 'policy', 'rewards']) {
    await assertPngOfSvg(path.join(out, 'plots', `${name}.png`), svg(name));
    assert.match(md, new RegExp(`!\\[[^\\]]+\\]\\(plots/${name}\\.png\\)`), `report.md shows ${name}.png`);
  }
  assert.doesNotMatch(
    md,
    /\b(blue|orange|green|red|purple|brown)\b/i,
    'the legends explain the colours, not the prose',
  );
  assert.equal(fs.readFileSync(path.join(out, 'report.md'), 'utf8'), md);
  assert.deepEqual(
    JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')),
    JSON.parse(JSON.stringify(report)),
  );
});

test('cycle report charts: a round recorded before rewardsKept and no per-round evals still give readable charts', async () => {
  const out = tempDir('report-charts');
  const report = buildCycleReport([roundRec(1, [], undefined)], { base: evalRec('base', 0, { inDomain: 0 }) }, []);
  assert.equal(report.rounds[0].reward.histogramKept, undefined);
  const md = await writeCycleReport(out, report);
  const svg = fs.readFileSync(path.join(out, 'plots', 'rewards.svg'), 'utf8');
  assertSvgShows(
    svg,
    ['selection', 'valid (kept not recorded)', 'candidates (count)', '0', '1'],
    'rewards without kept',
  );
  assert.ok(!fs.existsSync(path.join(out, 'plots', 'policy.png')), 'no policy chart without per-round evaluations');
  assert.doesNotMatch(md, /plots\/policy\.png/);
  assertSvgShows(
    fs.readFileSync(path.join(out, 'plots', 'final.svg'), 'utf8'),
    ['0.0', 'n/a'],
    'final with zeros and gaps',
  );
});
