// Small files written so that a reader, or a crash, sees the old file or the whole new one:
// a temp file in the same folder, fsync, rename over the target, fsync the folder.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** fsync a folder so that a rename in it is durable; skipped where folders cannot be opened. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch {
    // EISDIR / EPERM on platforms without folder fsync: the rename itself is still atomic.
  } finally {
    await fh?.close();
  }
}

export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fh = await fsp.open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

export async function copyFileAtomic(src: string, dst: string): Promise<void> {
  await writeFileAtomic(dst, await fsp.readFile(src));
}
