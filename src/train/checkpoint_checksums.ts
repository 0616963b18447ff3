// SHA-256 of every file of a run checkpoint, recorded in its trainer_state.json and checked before a
// resume loads anything. A flipped bit in a weight or optimizer file otherwise either loads without
// a word (a slightly different model) or turns the run into NaN a few steps later, far from the
// cause. trainer_state.json itself is not listed: it is written last, holding the list.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';

/** File name (in the checkpoint folder) -> lowercase hex SHA-256. */
export type Checksums = Record<string, string>;

/** SHA-256 of a file, streamed (a 15 GB weight file is never in memory at once). */
export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

/** The checksums of every plain file in `dir` except those named in `except`, by name. */
export async function checksumFolder(dir: string, except: readonly string[]): Promise<Checksums> {
  const out: Checksums = {};
  const entries = await fsp.readdir(dir, { withFileTypes: true });
  for (const e of entries.filter((x) => x.isFile()).sort((a, b) => a.name.localeCompare(b.name))) {
    if (except.includes(e.name)) continue;
    out[e.name] = await sha256OfFile(path.join(dir, e.name));
  }
  return out;
}

/**
 * Checks the files of checkpoint `dir` against `recorded`; throws naming the first file that is
 * missing or differs. `only` limits the check to the files this process will read (under ZeRO a rank
 * reads its own optimizer slice, not the others').
 */
export async function verifyChecksums(
  dir: string,
  recorded: Checksums,
  only?: (file: string) => boolean,
): Promise<void> {
  for (const [file, want] of Object.entries(recorded)) {
    if (only && !only(file)) continue;
    const full = path.join(dir, file);
    if (!fs.existsSync(full))
      throw new Error(`checkpoint ${dir} is damaged: ${file} is missing (its trainer state records a SHA-256 for it)`);
    const got = await sha256OfFile(full);
    if (got !== want)
      throw new Error(
        `checkpoint ${dir} is damaged: ${file} does not match its recorded SHA-256 ` +
          `(recorded ${want.slice(0, 12)}…, now ${got.slice(0, 12)}…); resume from an earlier checkpoint`,
      );
  }
}
