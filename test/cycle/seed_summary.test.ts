// `medgr2 summarize`: runs written by hand on three world seeds, whose means and standard deviations are
// worked out here by hand; the claims are judged on the means and counted per seed; runs that differ in
// more than their seed, repeat a seed or have not finished are refused with the file or field named.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { EvalRecord, TestSetName } from '../../src/cycle/cycle';
import { efficiencyClaim, mechanismClaims, type EfficiencyRow } from '../../src/cycle/mechanism_claims';
import { paperClaims, type ArmTable, type CycleReport } from '../../src/cycle/report';
import { formatSeedSummary, readSeedRun, seedStat, summarizeSeeds } from '../../src/cycle/seed_summary';
import { runCli } from '../helpers/cli';
import { tinyRun } from '../helpers/cycle_runs';
import { tempDir } from '../helpers/temp_dir';

const sets = (inDomain: number, heldOutModality: number, heldOutTask: number): Record<TestSetName, number> => ({
  inDomain,
  heldOutModality,
  heldOutTask,
});

interface SeedNumbers {
  seed: number;
  final: ArmTable;
  /** held-out modality of rounds 1 and 2, sftCycle then grpoCycle */
  rounds: { sftCycle: [number, number]; grpoCycle: [number, number] };
  auc: [number, number];
  efficiency?: EfficiencyRow[];
  /** grounded candidates of rounds 1 and 2 (absent: round records without the count) */
  grounded?: [number, number];
}

function evalRecord(arm: string, round: number, heldOutModality: number): EvalRecord {
  const overall = { accuracy: heldOutModality, correct: 0, total: 0 };
  return { arm, round, sets: { heldOutModality: { overall } as never } };
}

/** A finished run folder: config.json, report.json (its claims as the cycle would state them), eval files. */
function writeRun(root: string, n: SeedNumbers, over: Record<string, unknown> = {}): string {
  const dir = path.join(root, `seed-${n.seed}`);
  fs.mkdirSync(path.join(dir, 'eval'), { recursive: true });
  const config = {
    out: dir,
    rounds: 2,
    seed: n.seed,
    resume: false,
    rewardFilter: true,
    world: { poolImages: 96 },
    ...over,
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const rounds = n.auc.map((auc, k) => ({
    round: k + 1,
    judge: { accuracy: 0.8, auc, pairs: 10 },
    selectionPrecision: { kept: 10, keptCorrect: 8 - k, dropped: 20, droppedCorrect: 10 },
    ...(n.grounded ? { grounded: n.grounded[k] } : {}),
  }));
  const heldOutByRound = { sftCycle: n.rounds.sftCycle, grpoCycle: n.rounds.grpoCycle };
  const report = {
    rounds,
    final: n.final,
    claims: paperClaims(n.final),
    mechanisms: [
      ...mechanismClaims({ final: n.final, heldOutByRound, rounds }),
      ...(n.efficiency ? [efficiencyClaim(n.efficiency)] : []),
    ],
    ...(n.efficiency ? { efficiency: n.efficiency } : {}),
  } as unknown as CycleReport;
  fs.writeFileSync(path.join(dir, 'report.json'), JSON.stringify(report));
  for (const arm of ['sftCycle', 'grpoCycle'] as const)
    n.rounds[arm].forEach((acc, k) =>
      fs.writeFileSync(
        path.join(dir, 'eval', `${arm}-round-${k + 1}.json`),
        JSON.stringify(evalRecord(arm, k + 1, acc)),
      ),
    );
  return dir;
}

const effRow = (size: number, ranking: EfficiencyRow['ranking'], sft: number, grpo: number): EfficiencyRow => ({
  size,
  ranking,
  sft: sets(sft, sft, sft),
  grpo: sets(grpo, grpo, grpo),
});

/** Reward filtering: sftCycle ahead of random selection on every seed, grpoCycle behind on seed 3 only. */
const SEEDS: SeedNumbers[] = [
  {
    seed: 1,
    final: {
      sftSeed: sets(0.7, 0.1, 0),
      sftCycle: sets(0.7, 0.5, 0),
      grpoCycle: sets(0.7, 0.6, 0),
      noRewardFilterSftCycle: sets(0.7, 0.4, 0),
      noRewardFilterGrpoCycle: sets(0.7, 0.5, 0),
    },
    rounds: { sftCycle: [0.4, 0.5], grpoCycle: [0.5, 0.6] },
    auc: [0.8, 0.9],
    efficiency: [
      effRow(30, 'top-k', 0.4, 0.5),
      effRow(30, 'random', 0.3, 0.4),
      effRow(60, 'top-k', 0.5, 0.5),
      effRow(60, 'random', 0.4, 0.4),
    ],
  },
  {
    seed: 2,
    final: {
      sftSeed: sets(0.8, 0.2, 0),
      sftCycle: sets(0.8, 0.6, 0),
      grpoCycle: sets(0.8, 0.7, 0),
      noRewardFilterSftCycle: sets(0.8, 0.5, 0),
      noRewardFilterGrpoCycle: sets(0.8, 0.6, 0),
    },
    rounds: { sftCycle: [0.5, 0.6], grpoCycle: [0.75, 0.7] },
    auc: [0.7, 0.7],
    efficiency: [
      effRow(26, 'top-k', 0.5, 0.5),
      effRow(26, 'random', 0.3, 0.4),
      effRow(52, 'top-k', 0.5, 0.6),
      effRow(52, 'random', 0.4, 0.4),
    ],
  },
  {
    seed: 3,
    final: {
      sftSeed: sets(0.9, 0.3, 0),
      sftCycle: sets(0.9, 0.7, 0),
      grpoCycle: sets(0.9, 0.45, 0),
      noRewardFilterSftCycle: sets(0.9, 0.6, 0),
      noRewardFilterGrpoCycle: sets(0.9, 0.5, 0),
    },
    rounds: { sftCycle: [0.6, 0.7], grpoCycle: [0.4, 0.45] },
    auc: [0.6, 0.5],
    efficiency: [
      effRow(31, 'top-k', 0.3, 0.3),
      effRow(31, 'random', 0.3, 0.4),
      effRow(62, 'top-k', 0.5, 0.5),
      effRow(62, 'random', 0.4, 0.4),
    ],
  },
];

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

test('seedStat: mean and the sample standard deviation (n - 1), 0 for one value', () => {
  const s = seedStat([0.5, 0.6, 0.7]);
  close(s.mean, 0.6);
  close(s.sd, 0.1); // deviations -0.1, 0, 0.1: (0.01 + 0.01) / 2 = 0.01
  assert.deepEqual(s.values, [0.5, 0.6, 0.7]);
  assert.deepEqual(seedStat([0.25]), { values: [0.25], mean: 0.25, sd: 0 });
});

test('summarizeSeeds: means ± sd per arm and set, per round, of the judge and the efficiency arms', () => {
  const root = tempDir('summary');
  const s = summarizeSeeds(SEEDS.map((n) => readSeedRun(writeRun(root, n))));
  assert.deepEqual(
    s.runs.map((r) => r.seed),
    [1, 2, 3],
  );
  close(s.final.sftCycle.heldOutModality!.mean, 0.6);
  close(s.final.sftCycle.heldOutModality!.sd, 0.1);
  close(s.final.grpoCycle.heldOutModality!.mean, (0.6 + 0.7 + 0.45) / 3);
  close(s.final.sftCycle.inDomain!.sd, 0.1);
  // mean of the sets, seed 1: (0.7 + 0.5 + 0) / 3 = 0.4; seed 2: 0.4667; seed 3: 0.5333
  close(s.final.sftCycle.mean!.mean, (0.4 + 1.4 / 3 + 1.6 / 3) / 3);
  assert.deepEqual(s.final.grpoCycle.heldOutModality!.values, [0.6, 0.7, 0.45]);
  // round 1: sftCycle 0.4, 0.5, 0.6 -> 0.5 ± 0.1; grpoCycle 0.5, 0.75, 0.4
  close(s.heldOutByRound.sftCycle[0]!.mean, 0.5);
  close(s.heldOutByRound.sftCycle[0]!.sd, 0.1);
  assert.deepEqual(s.heldOutByRound.grpoCycle[0]!.values, [0.5, 0.75, 0.4]);
  close(s.judgeAuc[1].mean, 0.7);
  // efficiency by size rank: the quarter's sizes are 30, 26, 31; top-k SFT 0.4, 0.5, 0.3
  const quarterTop = s.efficiency.find((e) => e.ranking === 'top-k' && e.sizes[0] === 30)!;
  assert.deepEqual(quarterTop.sizes, [30, 26, 31]);
  close(quarterTop.sft!.mean, 0.4);
  assert.equal(s.efficiency.length, 4);
});

test('summarizeSeeds: grounded candidates per round as mean ± sd, tabled only when a run grounded any', () => {
  const root = tempDir('summary-grounded');
  const counts: [number, number][] = [
    [276, 165],
    [205, 108],
    [230, 140],
  ];
  const grounded = summarizeSeeds(
    SEEDS.map((n, i) => readSeedRun(writeRun(path.join(root, 'g'), { ...n, grounded: counts[i] }))),
  );
  close(grounded.grounded[0]!.mean, (276 + 205 + 230) / 3);
  assert.deepEqual(grounded.grounded[1]!.values, [165, 108, 140]);
  assert.match(formatSeedSummary(grounded), /\| grounded candidates \| 237 ± 36 \(276 \/ 205 \/ 230\) \| 138 ± 29/);
  // round records without the count (older runs): null, and no row
  const plain = summarizeSeeds(SEEDS.map((n) => readSeedRun(writeRun(path.join(root, 'p'), n))));
  assert.deepEqual(plain.grounded, [null, null]);
  assert.doesNotMatch(formatSeedSummary(plain), /grounded candidates/);
});

test('summarizeSeeds: each claim judged on the means, with the seeds it holds on alone', () => {
  const root = tempDir('summary');
  const s = summarizeSeeds(SEEDS.map((n) => readSeedRun(writeRun(root, n))));
  const claim = (re: RegExp) => s.claims.find((c) => re.test(c.name))!;
  // grpoCycle 0.583 vs random 0.533 on the mean of held-out modalities; seed 3 alone 0.45 vs 0.5
  const filter = claim(/reward filtering/);
  assert.equal(filter.holds, true);
  assert.equal(filter.seedsHolding, 2);
  assert.equal(filter.seedsChecked, 3);
  assert.match(filter.detail, /grpoCycle 58\.3% vs 53\.3% on held-out modalities/);
  // rounds on the means: sftCycle 0.5 -> 0.6, grpoCycle 0.55 -> 0.583: holds; alone not on seed 2 (0.75 -> 0.7)
  const rounds = claim(/each round/);
  assert.equal(rounds.holds, true);
  assert.equal(rounds.seedsHolding, 2);
  // the paper's GRPO claim: grpoCycle 0.583 vs sftCycle 0.6 on the mean; seed 3 alone 0.45 vs 0.7
  const grpo = claim(/GRPO on the cycle data/);
  assert.equal(grpo.holds, false);
  assert.match(grpo.detail, /on the mean of the seeds/);
  assert.equal(grpo.seedsHolding, 2);
  // efficiency: quarter GRPO top-k 0.433 vs random 0.4; half SFT 0.5 vs 0.4, GRPO 0.533 vs 0.4
  const eff = claim(/top-k samples by reward/);
  assert.equal(eff.holds, true);
  assert.match(eff.detail, /^29 sft: 40\.0% vs 30\.0%/);
  assert.equal(eff.seedsHolding, 2); // seed 3's quarter: SFT 0.3 vs 0.3, not ahead
  const md = formatSeedSummary(s);
  assert.match(md, /over 3 world seeds \(1, 2, 3\)/);
  assert.match(
    md,
    /\| sftCycle \| 80\.0 ± 10\.0 \(70\.0 \/ 80\.0 \/ 90\.0\) \| 60\.0 ± 10\.0 \(50\.0 \/ 60\.0 \/ 70\.0\) \|/,
  );
  assert.match(md, /\*\*reward filtering beats random selection\*\*: holds on the mean; alone on 2 of 3 seeds/);
});

test('summarizeSeeds refuses runs of another configuration, a repeated seed, an unfinished run', () => {
  const root = tempDir('summary');
  const a = readSeedRun(writeRun(root, SEEDS[0]));
  const other = readSeedRun(writeRun(path.join(root, 'b'), SEEDS[1], { world: { poolImages: 48 } }));
  assert.throws(() => summarizeSeeds([a, other]), /differs from .*seed-1's in "world"/);
  const again = readSeedRun(writeRun(path.join(root, 'c'), { ...SEEDS[1], seed: 1 }));
  assert.throws(() => summarizeSeeds([a, again]), /the same world seed 1/);
  const unfinished = writeRun(path.join(root, 'd'), SEEDS[2]);
  fs.rmSync(path.join(unfinished, 'report.json'));
  assert.throws(() => readSeedRun(unfinished), /seed-3\/report\.json: missing \(the run has not finished/);
  fs.rmSync(path.join(root, 'seed-1', 'eval', 'grpoCycle-round-2.json'));
  assert.throws(
    () => readSeedRun(path.join(root, 'seed-1')),
    /grpoCycle-round-2\.json: missing \(round 2's evaluation of grpoCycle\)/,
  );
});

test('medgr2 summarize: prints the summary, writes summary.md and summary.json; a bad folder exits non-zero', () => {
  const root = tempDir('summary');
  const dirs = SEEDS.map((n) => writeRun(root, n));
  const out = path.join(root, 'summary');
  const r = runCli(['summarize', ...dirs, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /## Claims on the means/);
  assert.equal(fs.readFileSync(path.join(out, 'summary.md'), 'utf8'), r.stdout);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  assert.deepEqual(json.final.sftCycle.heldOutModality.values, [0.5, 0.6, 0.7]);
  const bad = runCli(['summarize', dirs[0], root]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /config\.json: missing \(not a cycle run folder\)/);
});

test('medgr2 cycle --seeds 1,2: one run per world seed in OUT/seed-N, then OUT/summary.md of both', () => {
  const dir = tempDir('seeds');
  const out = path.join(dir, 'runs');
  // the file merges into the defaults key by key: the tiny run's top-k would join the default top fraction
  const { out: _out, resume: _resume, seed: _seed, select: _select, ...tiny } = tinyRun(out);
  const config = path.join(dir, 'tiny.json');
  fs.writeFileSync(config, JSON.stringify(tiny));
  const r = runCli(['cycle', '--config', config, '--seeds', '1,2', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  for (const seed of [1, 2]) {
    const cfg = JSON.parse(fs.readFileSync(path.join(out, `seed-${seed}`, 'config.json'), 'utf8'));
    assert.equal(cfg.seed, seed);
    assert.ok(fs.existsSync(path.join(out, `seed-${seed}`, 'report.json')));
  }
  const md = fs.readFileSync(path.join(out, 'summary.md'), 'utf8');
  assert.match(md, /over 2 world seeds \(1, 2\)/);
  assert.match(r.stdout, /summary: .*summary\.md/);
  // the two worlds differ: their seed sets are other images
  const seedSet = (s: number) => fs.readFileSync(path.join(out, `seed-${s}`, 'data', 'seed.rec'));
  assert.notDeepEqual(seedSet(1), seedSet(2));
});

test('medgr2 cycle --seeds: a list of two or more distinct seeds, and not with --seed', () => {
  const out = path.join(tempDir('seeds'), 'runs');
  const cases: [string[], RegExp][] = [
    [['--seeds', '1'], /--seeds: at least 2 seeds, got "1"/],
    [['--seeds', '1,1'], /--seeds: a seed is repeated in "1,1"/],
    [['--seeds', '1,x'], /--seeds expects whole numbers separated by commas, got "1,x"/],
    [['--seeds', '1,2', '--seed', '3'], /--seed and --seeds: give one of them/],
  ];
  for (const [flags, re] of cases) {
    const r = runCli(['cycle', ...flags, '--out', out]);
    assert.notEqual(r.status, 0, flags.join(' '));
    assert.match(r.stderr, re);
    assert.ok(!fs.existsSync(out), 'nothing was started');
  }
});
