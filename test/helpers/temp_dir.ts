// The one way tests make a scratch folder: a fresh os.tmpdir()/medgr2-<name>-XXXXXX, removed with all
// it holds when the process that made it exits (node --test runs each test file in a process of its
// own). Only that process removes it: the children a test spawns never register anything.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made: string[] = [];

function removeMade(): void {
  for (const dir of made) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      process.stderr.write(`tempDir: could not remove ${dir}: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
}

/** A new empty folder os.tmpdir()/medgr2-<name>-XXXXXX, removed when this process exits. */
export function tempDir(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `medgr2-${name}-`));
  made.push(dir);
  if (made.length === 1) process.on('exit', removeMade);
  return dir;
}
