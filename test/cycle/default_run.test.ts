// The default run's properties (validity rising, both claims), read from the run the README's quick
// start made (`npx medgr2 cycle` writes ./medgr2-cycle): an 8-minute cycle is too long to run inside the
// test suite, and CI runs it anyway just before `npm test`. Skipped when that folder holds no finished
// run with the default config (a fresh checkout, or a run made with other flags).
//
// The run is deterministic, so these are not flaky: they fail when a change to the cycle breaks them.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { defaultCycleConfig, type CycleConfig } from '../../src/cycle/config';
import type { CycleReport } from '../../src/cycle/report';
import { repoRoot } from '../helpers/cli';

const RUN = path.join(repoRoot, 'medgr2-cycle');

function defaultRun(): { report: CycleReport } | string {
  const reportFile = path.join(RUN, 'report.json');
  const configFile = path.join(RUN, 'config.json');
  if (!fs.existsSync(reportFile) || !fs.existsSync(configFile))
    return `no finished default run in ${RUN} (run \`npx medgr2 cycle\` first)`;
  const cfg = JSON.parse(fs.readFileSync(configFile, 'utf8')) as CycleConfig;
  const want = defaultCycleConfig(cfg.out);
  for (const k of Object.keys(want) as (keyof CycleConfig)[]) {
    if (k === 'resume') continue;
    if (JSON.stringify(cfg[k]) !== JSON.stringify(want[k]))
      return `${RUN} was made with another '${k}' than the default`;
  }
  return { report: JSON.parse(fs.readFileSync(reportFile, 'utf8')) as CycleReport };
}

const run = defaultRun();
const skip = typeof run === 'string' ? run : false;

test("default run: the generator's validity rate rises between rounds", { skip }, () => {
  const { rounds } = (run as { report: CycleReport }).report;
  assert.ok(rounds.length >= 2, `${rounds.length} round(s)`);
  for (let r = 1; r < rounds.length; r++) {
    // the generator's own replies (the report's figure leaves task cards' candidates out)
    const before = rounds[r - 1].generatorValidity;
    const after = rounds[r].generatorValidity;
    assert.ok(
      after > before,
      `round ${r + 1} validity ${(100 * after).toFixed(1)} % is not above round ${r}'s ${(100 * before).toFixed(1)} %`,
    );
  }
});

test("default run: SFT on the cycle data beats SFT on the seed (the paper's first claim)", { skip }, () => {
  const { claims, final } = (run as { report: CycleReport }).report;
  const claim = claims.find((c) => c.name.startsWith('SFT on the cycle data'));
  assert.ok(claim, 'the report states the claim');
  assert.equal(claim.holds, true, claim.detail);
  assert.ok(
    (final.sftCycle.heldOutModality ?? 0) > (final.sftSeed.heldOutModality ?? 0),
    'held-out modalities improve',
  );
});

test(
  "default run: GRPO on the cycle data beats SFT on it on held-out modalities (the paper's second claim)",
  { skip },
  () => {
    const { claims, final } = (run as { report: CycleReport }).report;
    const claim = claims.find((c) => c.name.startsWith('GRPO on the cycle data'));
    assert.ok(claim, 'the report states the claim');
    assert.equal(claim.holds, true, claim.detail);
    assert.ok((final.grpoCycle.heldOutModality ?? 0) > (final.sftCycle.heldOutModality ?? 0));
  },
);

test("default run: the report states the method's mechanisms with their numbers, holding or not", { skip }, () => {
  const { mechanisms } = (run as { report: CycleReport }).report;
  assert.ok(mechanisms, 'the report has a mechanisms section');
  assert.equal(mechanisms.length, 4, mechanisms.map((c) => c.name).join(' | '));
  for (const c of mechanisms) {
    assert.ok(c.holds !== null, `${c.name}: ${c.detail}`);
    assert.match(c.detail, /\d+\.\d%|\d\.\d{3}/, `${c.name} states its numbers`);
  }
});
