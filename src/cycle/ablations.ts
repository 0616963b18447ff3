// The main chain of the cycle and the ablations asked for, then the report. Each ablation runs as its
// own chain in OUT/ablation-<name>/, sharing the stages before round 1 (copied, not redone), and
// joins the final table as an extra arm. `cycle --study` asks for both ablations and the
// data-efficiency arms (data_efficiency.ts), which run in the main chain's folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Cycle, type CycleHooks, type CycleResult, type EvalRecord } from './cycle';
import type { CycleRanks } from './ranks';
import type { CycleConfig } from './config';
import { buildCycleReport, formatFinalTable, writeCycleReport, type EfficiencyRow } from './report';
import { runDataEfficiency } from './data_efficiency';

export interface Ablations {
  /** Random selection instead of the reward model. */
  noRewardFilter?: boolean;
  /** Generator and reward model frozen after round 1. */
  noCoEvolve?: boolean;
  /** Top-k by reward vs random subsets of round 1 at three sizes (data_efficiency.ts). */
  dataEfficiency?: boolean;
}

export interface StudyOptions {
  /**
   * Run independent work side by side in one process: inside each chain the stages that do not read
   * each other's outputs (Cycle's lanes), and after the main chain the ablation chains beside the
   * data-efficiency arms. Each native call runs on its own pool thread, so on a 2-core machine with
   * one intra-op thread both cores work. Only where the chain allows it (Cycle.sideBySide: the tiny
   * model on the CPU, one rank, no LoRA).
   */
  parallelLanes?: boolean;
}

/** What `cycle --study` runs: every ablation and the data-efficiency comparison. */
export const STUDY: Required<Ablations> = { noRewardFilter: true, noCoEvolve: true, dataEfficiency: true };

/** The stages before round 1 are the same in every chain: copy their outputs and manifests. */
function shareWarmStart(from: string, to: string): void {
  const copy = (rel: string) => {
    const src = path.join(from, rel);
    if (fs.existsSync(src) && !fs.existsSync(path.join(to, rel)))
      fs.cpSync(src, path.join(to, rel), { recursive: true });
  };
  for (const rel of [
    'data',
    'eval/base.json',
    'eval/sftSeed.json',
    'models/init',
    'models/generator-1',
    'models/judge-1',
    'models/policy-sft-seed',
  ])
    copy(rel);
  for (const f of fs.readdirSync(path.join(from, 'manifests')))
    if (!f.startsWith('round-')) copy(path.join('manifests', f));
}

/** `work` on a cycle, then the cycle's shared model freed, whatever happened. */
async function closing<T>(cycle: Cycle, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } finally {
    await cycle.close();
  }
}

/** Runs the cycle and the ablations, writes OUT/report.md and report.json; returns the final table as text. */
export async function runCycleWithAblations(
  cfg: CycleConfig,
  ablations: Ablations,
  hooks: CycleHooks = {},
  ranks?: CycleRanks,
  opts: StudyOptions = {},
): Promise<{ main: CycleResult; text: string }> {
  const t0 = Date.now();
  const isMain = ranks?.isMain ?? true;
  const log = isMain ? (hooks.log ?? ((s: string) => void process.stderr.write(s + '\n'))) : () => {};
  const chain = new Cycle(cfg, { ...hooks, log }, ranks, opts);
  // Each chain frees its shared LoRA base when done, so one base is in memory at a time.
  const main = await closing(chain, () => chain.run());
  const last = (r: CycleResult, arm: string): EvalRecord | undefined => r.evals.filter((e) => e.arm === arm).pop();
  const arms: Record<string, EvalRecord | undefined> = {
    base: last(main, 'base'),
    sftSeed: last(main, 'sftSeed'),
    sftCycle: last(main, 'sftCycle'),
    grpoCycle: last(main, 'grpoCycle'),
  };
  const variants: [string, Partial<CycleConfig>, boolean | undefined][] = [
    ['noRewardFilter', { rewardFilter: false }, ablations.noRewardFilter],
    ['noCoEvolve', { coEvolve: false }, ablations.noCoEvolve],
  ];
  // Two lanes after the main chain: the ablation chains one after the other, and the data-efficiency
  // arms (which read only the main chain's round 1). Neither reads what the other writes, and every
  // native draw has its own seeded generator, so running them side by side gives the same numbers as
  // one after the other (test/cycle/run.test.ts).
  const ablationLane = async () => {
    for (const [name, over, asked] of variants) {
      if (!asked) continue;
      const out = path.join(cfg.out, `ablation-${name}`);
      if (isMain) {
        fs.mkdirSync(out, { recursive: true });
        shareWarmStart(cfg.out, out);
      }
      await ranks?.barrier();
      log(`[cycle] ablation ${name}: ${out}`);
      const variant = new Cycle({ ...cfg, ...over, out, resume: true }, { ...hooks, log }, ranks, opts);
      const v = await closing(variant, () => variant.run());
      arms[`${name}SftCycle`] = last(v, 'sftCycle');
      arms[`${name}GrpoCycle`] = last(v, 'grpoCycle');
    }
  };
  let efficiency: EfficiencyRow[] | undefined;
  const efficiencyLane = async () => {
    if (ablations.dataEfficiency) efficiency = await closing(chain, () => runDataEfficiency(chain, log));
  };
  if (chain.sideBySide) await Promise.all([ablationLane(), efficiencyLane()]);
  else {
    await ablationLane();
    await efficiencyLane();
  }
  const perRound = main.evals.filter((e) => e.round > 0);
  const seconds = (Date.now() - t0) / 1000;
  const report = buildCycleReport(main.rounds, arms, perRound, seconds, efficiency);
  if (isMain) await writeCycleReport(cfg.out, report);
  const text = [
    formatFinalTable(report),
    '',
    ...report.claims.map((c) => `- ${c.name}: ${c.detail}`),
    '',
    "The method's mechanisms:",
    ...report.mechanisms.map(
      (c) =>
        `- ${c.name}: ${c.holds === null ? 'cannot be checked' : c.holds ? 'holds' : 'does NOT hold'} (${c.detail})`,
    ),
  ].join('\n');
  return { main, text };
}
