// The cycle report's per-round tables: a modality that occurs in two test sets (CT in the in-domain
// and the held-out-task set) pools the questions of both; neither set's figure hides the other's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EvalRecord, RoundRecord } from '../../src/cycle/cycle';
import type { ScoreResult } from '../../src/eval/scorer';
import { buildCycleReport } from '../../src/cycle/report';

const g = (correct: number, total: number) => ({ correct, total, accuracy: correct / total });

function score(byModality: Record<string, [number, number]>, byTask: Record<string, [number, number]>): ScoreResult {
  const mod = Object.fromEntries(Object.entries(byModality).map(([k, [c, t]]) => [k, g(c, t)]));
  const c = Object.values(byModality).reduce((a, [x]) => a + x, 0);
  const t = Object.values(byModality).reduce((a, [, y]) => a + y, 0);
  return {
    overall: g(c, t),
    byModality: mod,
    byTask: Object.fromEntries(Object.entries(byTask).map(([k, [x, y]]) => [k, g(x, y)])),
    byDataset: { MedSynth: g(c, t) },
    invalid: 0,
    macroF1: 0,
    unknown: 0,
    missing: 0,
  };
}

test('cycle report: per-round accuracy by modality and task pools the test sets', () => {
  const round: RoundRecord = {
    round: 1,
    candidates: 10,
    valid: 9,
    kept: 4,
    rewards: [0.1, 0.9],
    rewardsValid: [0.1, 0.9],
    judge: { accuracy: 0.8, auc: 0.9, pairs: 4 },
    invalidReasons: {},
    generatorSteps: 1,
    judgeSteps: 1,
    policySftLoss: [],
    grpoMeanReward: [],
  };
  const evalRec: EvalRecord = {
    arm: 'sftCycle',
    round: 1,
    sets: {
      inDomain: score(
        { CT: [22, 36], MRI: [27, 36] },
        { 'Anatomy Identification': [40, 48], 'Disease Diagnosis': [9, 24] },
      ),
      heldOutModality: score({ OCT: [24, 36] }, { 'Anatomy Identification': [10, 12], 'Disease Diagnosis': [14, 24] }),
      heldOutTask: score({ CT: [0, 9] }, { 'Lesion Grading': [0, 9] }),
    },
  };
  const report = buildCycleReport([round], { sftCycle: evalRec }, [evalRec]);
  const p = report.rounds[0].policy.sftCycle;
  assert.equal(p.byModality.CT, 22 / 45, 'CT pools 22/36 in-domain and 0/9 held-out-task');
  assert.equal(p.byModality.MRI, 27 / 36);
  assert.equal(p.byModality.OCT, 24 / 36);
  assert.equal(p.byTask['Anatomy Identification'], 40 / 48);
  assert.equal(p.byTask['Anatomy Identification (held-out modalities)'], 10 / 12);
  assert.equal(p.byTask['Lesion Grading'], 0);
  assert.equal(p.overall, (49 + 24 + 0) / (72 + 36 + 9));
});
