#!/usr/bin/env node
// The `medgr2` command. Each subcommand lives in its own file and registers itself here; a command
// is listed only once it really works.
import { Command, CommanderError } from 'commander';
import { AddonLoadError } from '../native/loader';
import { packageVersion } from '../version';
import { registerCycle } from './cycle';
import { registerData } from './data';
import { registerEval } from './eval';
import { registerGenerate } from './generate';
import { registerGrpo } from './grpo';
import { registerInfo } from './info';
import { registerInspect } from './inspect';
import { registerLaunch } from './launch';
import { registerScore } from './score';
import { registerSelect } from './select';
import { registerSft } from './sft';
import { registerSummarize } from './summarize';

export function buildProgram(): Command {
  const program = new Command('medgr2')
    .description('MedGR2: generative reward learning for medical vision-language reasoning')
    .version(packageVersion, '-V, --version')
    .showHelpAfterError()
    // A command's options count only before its subcommand's name (`eval` has options of its own
    // and the subcommand `eval score`, which share names like --benchmark).
    .enablePositionalOptions();
  registerInfo(program);
  registerData(program);
  registerInspect(program);
  registerSft(program);
  registerEval(program);
  registerGrpo(program);
  registerGenerate(program);
  registerScore(program);
  registerSelect(program);
  registerCycle(program);
  registerSummarize(program);
  registerLaunch(program);
  return program;
}

/** Prints a one-line (or few-line) reason and exits non-zero: no stack traces for user errors. */
export function reportFatal(err: unknown): never {
  if (err instanceof AddonLoadError) {
    process.stderr.write(err.message + '\n');
    process.exit(3);
  }
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`medgr2: ${msg}\n`);
  if (process.env.MEDGR2_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  process.exit(1);
}

if (require.main === module) {
  // `medgr2 inspect big.rec | head` closes the pipe early: that is the reader's choice, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  buildProgram().parseAsync(process.argv).catch(reportFatal);
}
