// The method's mechanism claims and the data-efficiency claim, on inputs written by hand: each claim
// holds, fails or cannot be checked exactly when its numbers say so, and states those numbers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ABOVE_CHANCE_LEVEL,
  binomialTail,
  CHANCE,
  efficiencyClaim,
  heldOutSeries,
  mechanismClaims,
  meanOfSets,
  type EfficiencyRow,
  type MechanismInputs,
} from '../../src/cycle/mechanism_claims';
import type { EvalRecord } from '../../src/cycle/cycle';

const accs = (inDomain: number, heldOutModality: number, heldOutTask: number) => ({
  inDomain,
  heldOutModality,
  heldOutTask,
});

function evalAt(arm: string, round: number, heldOutModality: number): EvalRecord {
  const score = { overall: { accuracy: heldOutModality, correct: 0, total: 0 } };
  return { arm, round, sets: { heldOutModality: score as never } };
}

function inputs(over: Partial<MechanismInputs> = {}): MechanismInputs {
  return {
    final: {
      sftSeed: accs(0.6, 0.1, 0.2),
      sftCycle: accs(0.7, 0.5, 0.3),
      grpoCycle: accs(0.7, 0.6, 0.4),
    },
    heldOutByRound: heldOutSeries([
      evalAt('grpoCycle', 2, 0.6),
      evalAt('sftCycle', 1, 0.4),
      evalAt('sftCycle', 2, 0.5),
      evalAt('grpoCycle', 1, 0.6),
    ]),
    rounds: [
      {
        round: 1,
        judge: { auc: 0.8 },
        selectionPrecision: { kept: 10, keptCorrect: 7, dropped: 20, droppedCorrect: 8 },
      },
      {
        round: 2,
        judge: { auc: 0.75 },
        selectionPrecision: { kept: 10, keptCorrect: 6, dropped: 20, droppedCorrect: 8 },
      },
    ],
    ...over,
  };
}

const byName = (claims: ReturnType<typeof mechanismClaims>, re: RegExp) => claims.find((c) => re.test(c.name))!;

test('without ablation arms: selection precision and judge AUC per round, saying the ablation was not run', () => {
  const c = mechanismClaims(inputs());
  assert.equal(c.length, 4);
  const filter = byName(c, /keeps right samples/);
  assert.equal(filter.holds, true); // 70% vs 40%, 60% vs 40%
  assert.match(filter.detail, /round 1: 70\.0% of kept vs 40\.0% of dropped/);
  assert.match(filter.detail, /ablation was not run/);
  const judge = byName(c, /judge ranks/);
  assert.equal(judge.holds, false); // 0.75 < 0.8
  assert.match(judge.detail, /round 1 0\.800, round 2 0\.750/);
  const rounds = byName(c, /each round/);
  assert.equal(rounds.holds, true, 'an equal round counts as no worse (grpoCycle 60 -> 60)');
  assert.match(rounds.detail, /sftCycle 40\.0% -> 50\.0%; grpoCycle 60\.0% -> 60\.0%/);
  const task = byName(c, /held-out task/);
  assert.equal(task.holds, true); // 30%, 40% > 25% and > 20%
});

test('with ablation arms: the full method must lead on held-out modalities and the mean, both policies', () => {
  const final = {
    ...inputs().final,
    noRewardFilterSftCycle: accs(0.7, 0.45, 0.3),
    noRewardFilterGrpoCycle: accs(0.7, 0.55, 0.4),
    noCoEvolveSftCycle: accs(0.7, 0.5, 0.3), // ties sftCycle: not beaten
    noCoEvolveGrpoCycle: accs(0.6, 0.5, 0.3),
  };
  const c = mechanismClaims(inputs({ final }));
  const filter = byName(c, /reward filtering beats random/);
  assert.equal(filter.holds, true);
  assert.match(filter.detail, /sftCycle 50\.0% vs 45\.0% on held-out modalities/);
  const co = byName(c, /co-evolution beats/);
  assert.equal(co.holds, false);
  assert.match(co.detail, /full method vs noCoEvolve/);
});

test('claims that cannot be checked say so', () => {
  const c = mechanismClaims({ final: {}, heldOutByRound: {}, rounds: [{ round: 1, judge: { auc: 0.7 } }] });
  for (const claim of c) assert.equal(claim.holds, null, claim.name);
  // below chance is not a rise even when above the seed
  const low = mechanismClaims(inputs({ final: { ...inputs().final, sftCycle: accs(0.7, 0.5, CHANCE) } }));
  assert.equal(byName(low, /held-out task/).holds, false);
});

test('binomialTail equals the exact sum (fractions, by hand) and stays finite for many questions', () => {
  // P(X >= k), X ~ Binomial(n, 1/4), summed in exact fractions with /usr/bin/python3
  const exact: [number, number, number][] = [
    [11, 37, 0.3090673690439464],
    [15, 37, 0.027219822445189078],
    [30, 111, 0.3449668601375342],
    [2600, 10000, 0.011016488379470871],
  ];
  for (const [k, n, p] of exact) assert.ok(Math.abs(binomialTail(k, n, 0.25) - p) < 1e-12, `${k}/${n}`);
  assert.equal(binomialTail(0, 5, 0.25), 1);
  assert.ok(Math.abs(binomialTail(5, 5, 0.25) - 0.25 ** 5) < 1e-15);
  assert.equal(binomialTail(6, 5, 0.25), 0);
});

test("the held-out task: with the test set's size, above chance means beyond what guessing scores one time in twenty", () => {
  // 37 questions: 11 right (29.7 %) is what guessing scores 31 % of the time; 15 right (40.5 %) 2.7 %
  const final = (sft: number, grpo: number) => ({
    ...inputs().final,
    sftCycle: accs(0.7, 0.5, sft),
    grpoCycle: accs(0.7, 0.6, grpo),
  });
  const lucky = byName(
    mechanismClaims(inputs({ final: final(11 / 37, 15 / 37), heldOutTaskQuestions: 37 })),
    /held-out task/,
  );
  assert.equal(lucky.holds, false);
  assert.match(lucky.detail, /sftCycle 29\.7% \(11\/37, p = 0\.309 against guessing\)/);
  const beyond = byName(
    mechanismClaims(inputs({ final: final(15 / 37, 16 / 37), heldOutTaskQuestions: 37 })),
    /held-out task/,
  );
  assert.equal(beyond.holds, true);
  assert.ok(binomialTail(15, 37, CHANCE) < ABOVE_CHANCE_LEVEL);
  assert.match(beyond.detail, /grpoCycle 43\.2% \(16\/37, p = 0\.0\d\d against guessing\)/);
});

test('meanOfSets skips sets an arm was not evaluated on', () => {
  assert.equal(meanOfSets({ inDomain: 0.5, heldOutModality: null, heldOutTask: 0.25 }), 0.375);
  assert.equal(meanOfSets(undefined), null);
});

test('data efficiency: top-k must beat random at every size for SFT and GRPO', () => {
  const row = (size: number, ranking: EfficiencyRow['ranking'], sft: number, grpo: number): EfficiencyRow => ({
    size,
    ranking,
    sft: accs(sft, sft, sft),
    grpo: accs(grpo, grpo, grpo),
  });
  const rows = [
    row(4, 'top-k', 0.5, 0.6),
    row(4, 'random', 0.4, 0.5),
    row(8, 'top-k', 0.6, 0.7),
    row(8, 'random', 0.5, 0.6),
  ];
  const ok = efficiencyClaim(rows);
  assert.equal(ok.holds, true);
  assert.match(ok.detail, /4 sft: 50\.0% vs 40\.0%; 4 grpo: 60\.0% vs 50\.0%; 8 sft/);
  assert.equal(efficiencyClaim([...rows.slice(0, 3), row(8, 'random', 0.5, 0.7)]).holds, false);
  assert.equal(efficiencyClaim(rows.slice(0, 3)).holds, null, 'a missing arm cannot be checked');
});

test('heldOutSeries: per arm, the held-out-modality accuracy in round order (null where not evaluated)', () => {
  const noSet: EvalRecord = { arm: 'sftCycle', round: 3, sets: {} };
  assert.deepEqual(
    heldOutSeries([evalAt('sftCycle', 2, 0.5), noSet, evalAt('grpoCycle', 1, 0.7), evalAt('sftCycle', 1, 0.4)]),
    {
      sftCycle: [0.4, 0.5, null],
      grpoCycle: [0.7],
    },
  );
});
