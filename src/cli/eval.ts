// `medgr2 eval ...`: evaluation tools, one file per subcommand (eval_<name>.ts), registered here.
import type { Command } from 'commander';
import { registerEvalScore } from './eval_score';

export function registerEval(program: Command): void {
  const evalCmd = program.command('eval').description('evaluate models and score predictions');
  registerEvalScore(evalCmd);
}
