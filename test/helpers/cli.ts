// Runs the built CLI in a child process (no addon needed unless the command uses it).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..', '..');
export const cliPath = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, input?: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [cliPath, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    input,
    timeout: 300_000,
  });
}

/** The real OmniMedVQA records and predictions committed under test/fixtures/omnimedvqa/ (see its README). */
export const OMNIMEDVQA_FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'omnimedvqa');
