// `medgr2 eval ...`: runs a policy on a benchmark (eval_run.ts); its subcommands, one file each
// (eval_<name>.ts), are registered here.
import type { Command } from 'commander';
import { registerEvalRun } from './eval_run';
import { registerEvalScore } from './eval_score';

export function registerEval(program: Command): void {
  const evalCmd = program
    .command('eval')
    .description('run a policy on a benchmark (predictions JSONL + score), or score predictions (eval score)');
  // `eval` has options of its own and subcommands: its options count only before a subcommand's name
  // (the program enables positional options), so `eval score --benchmark B` gives --benchmark to `score`.
  evalCmd.enablePositionalOptions();
  registerEvalScore(evalCmd);
  registerEvalRun(evalCmd);
}
