// `medgr2 cycle [--rounds R] [--seed-data FILE] [--pool DIR] [--model DIR] [--out DIR] [--resume]
//               [--no-reward-filter] [--no-co-evolve]`: the MedGR² cycle (src/cycle/cycle.ts), then
// the report (src/report/cycle_report.ts). With no arguments: a MedSynth world and the tiny model.
// Each ablation asked for runs as its own chain in OUT/ablation-<name>/, sharing the stages before
// round 1 (copied, not redone), and joins the final table as an extra arm.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { Cycle, defaultCycleConfig, readJson, type CycleConfig, type CycleResult, type EvalRecord } from '../cycle/cycle';
import { buildCycleReport, formatFinalTable, writeCycleReport } from '../cycle/report';
import { parseIntOption } from './options';
import { progressPrinter } from './progress_line';

/** The stages before round 1 are the same in every chain: copy their outputs and manifests. */
function shareWarmStart(from: string, to: string): void {
  const copy = (rel: string) => {
    const src = path.join(from, rel);
    if (fs.existsSync(src) && !fs.existsSync(path.join(to, rel))) fs.cpSync(src, path.join(to, rel), { recursive: true });
  };
  for (const rel of ['data', 'eval/base.json', 'eval/sftSeed.json', 'models/init', 'models/generator-1', 'models/judge-1', 'models/policy-sft-seed']) copy(rel);
  for (const f of fs.readdirSync(path.join(from, 'manifests'))) if (!f.startsWith('round-')) copy(path.join('manifests', f));
}

export async function runCycleCommand(cfg: CycleConfig, ablations: { noRewardFilter?: boolean; noCoEvolve?: boolean }, log: (s: string) => void = (s) => void process.stderr.write(s + '\n')): Promise<{ main: CycleResult; text: string }> {
  const progress = progressPrinter();
  const main = await new Cycle(cfg, { progress, log }).run();
  const last = (r: CycleResult, arm: string): EvalRecord | undefined => r.evals.filter((e) => e.arm === arm).pop();
  const arms: Record<string, EvalRecord | undefined> = {
    base: last(main, 'base'), sftSeed: last(main, 'sftSeed'), sftCycle: last(main, 'sftCycle'), grpoCycle: last(main, 'grpoCycle'),
  };
  const variants: [string, Partial<CycleConfig>, boolean | undefined][] = [
    ['noRewardFilter', { rewardFilter: false }, ablations.noRewardFilter],
    ['noCoEvolve', { coEvolve: false }, ablations.noCoEvolve],
  ];
  for (const [name, over, asked] of variants) {
    if (!asked) continue;
    const out = path.join(cfg.out, `ablation-${name}`);
    fs.mkdirSync(out, { recursive: true });
    shareWarmStart(cfg.out, out);
    log(`[cycle] ablation ${name}: ${out}`);
    const v = await new Cycle({ ...cfg, ...over, out, resume: true }, { progress, log }).run();
    arms[`${name}SftCycle`] = last(v, 'sftCycle');
    arms[`${name}GrpoCycle`] = last(v, 'grpoCycle');
  }
  const perRound = main.evals.filter((e) => e.round > 0);
  const report = buildCycleReport(main.rounds, arms, perRound, main.seconds);
  await writeCycleReport(cfg.out, report);
  const text = [formatFinalTable(report), '', ...report.claims.map((c) => `- ${c.name}: ${c.detail}`)].join('\n');
  return { main, text };
}

/**
 * Without --out, a run never lands in a folder that holds an earlier run (which would refuse to
 * start without --resume): the README's `npx medgr2 cycle` works again and again, each run beside the last.
 */
export function freshRunFolder(base: string): string {
  const taken = (dir: string): boolean => fs.existsSync(path.join(dir, 'manifests'));
  if (!taken(base)) return base;
  for (let k = 2; ; k++) if (!taken(`${base}-${k}`)) return `${base}-${k}`;
}

export function registerCycle(program: Command): void {
  const d = defaultCycleConfig();
  program
    .command('cycle')
    .description('run the MedGR² cycle: generate, score, select, co-develop, policy SFT + GRPO, evaluate; writes OUT/report.md')
    .option('--rounds <r>', 'rounds of the cycle', parseIntOption('--rounds', 1), d.rounds)
    .option('--seed-data <file>', 'labelled seed samples (default: a MedSynth world)')
    .option('--pool <path>', 'unlabelled images: a folder or pool.jsonl (default: the MedSynth pool)')
    .option('--model <dir>', 'initial model folder with its tokenizer (default: the tiny model)')
    .option('--out <dir>', `run folder (default: ${d.out}, or ${d.out}-2, -3, ... when that holds an earlier run)`)
    .option('--resume', 'continue the run in --out from its last finished stage')
    .option('--no-reward-filter', 'also run the ablation: random selection instead of the reward model')
    .option('--no-co-evolve', 'also run the ablation: generator and reward model frozen after round 1')
    .option('--seed <n>', 'seed of the world, the model and every draw', parseIntOption('--seed'), d.seed)
    .option('--config <file>', 'JSON file overriding any field of the resolved config (see OUT/config.json)')
    .action(async (o) => {
      const out = o.out ?? (o.resume ? d.out : freshRunFolder(d.out));
      let cfg: CycleConfig = { ...d, out, rounds: o.rounds, seed: o.seed, seedData: o.seedData, pool: o.pool, model: o.model, resume: !!o.resume };
      if (o.config) cfg = { ...cfg, ...readJson<Partial<CycleConfig>>(o.config) };
      // commander's --no-x sets x = false; the main chain always filters and co-evolves
      const { text } = await runCycleCommand(cfg, { noRewardFilter: o.rewardFilter === false, noCoEvolve: o.coEvolve === false });
      process.stdout.write(`${text}\n\nreport: ${path.join(cfg.out, 'report.md')}\n`);
    });
}
