// Files and folders written so that a reader, or a crash, sees the old one or the whole new one:
// a temp path in the same folder, its content fsync'd, renamed over the target, the folder fsync'd
// (so the rename itself survives a power cut). The one way medgr2 replaces anything on disk.
import * as fs from 'node:fs';
import * as path from 'node:path';

let tempCounter = 0;

/** A fresh temp path beside `target` (same folder, so the rename never crosses file systems). */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${tempCounter++}`);
}

/** fsync a folder so that a rename in it is durable; skipped where folders cannot be opened. */
export function fsyncDirSync(dir: string): void {
  let fd = -1;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // EISDIR / EPERM on platforms without folder fsync: the rename itself is still atomic.
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  fsyncDirSync(dir);
}

function fsyncFileSync(file: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Runs `fill(tmp)` to write the new content at a temp path, then makes it `file`. `fill` may write
 *  any way it likes (a stream, a record writer); its content is fsync'd here before the rename. */
export function writeViaTempSync<T>(file: string, fill: (tmp: string) => T): T {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = tempPathFor(path.resolve(file));
  try {
    const result = fill(tmp);
    fsyncFileSync(tmp);
    fs.renameSync(tmp, file);
    fsyncDirSync(path.dirname(path.resolve(file)));
    return result;
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** The async twin of writeViaTempSync. */
export async function writeViaTemp<T>(file: string, fill: (tmp: string) => Promise<T>): Promise<T> {
  await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = tempPathFor(path.resolve(file));
  try {
    const result = await fill(tmp);
    fsyncFileSync(tmp);
    await fs.promises.rename(tmp, file);
    fsyncDirSync(path.dirname(path.resolve(file)));
    return result;
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  writeViaTempSync(file, (tmp) => fs.writeFileSync(tmp, data));
}

export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await writeViaTemp(file, (tmp) => fs.promises.writeFile(tmp, data));
}

/** JSON as medgr2 writes it everywhere: two-space indent and a final newline. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

export function writeJsonAtomicSync(file: string, value: unknown): void {
  writeFileAtomicSync(file, jsonText(value));
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, jsonText(value));
}

export async function copyFileAtomic(src: string, dst: string): Promise<void> {
  await writeFileAtomic(dst, await fs.promises.readFile(src));
}

/** `dst` as a hard link to `src` (no bytes copied: for files never written in place, such as
 *  weights medgr2 only memory-maps), or a durable copy where links are refused (another filesystem). */
export async function linkOrCopyFile(src: string, dst: string): Promise<void> {
  try {
    await fs.promises.link(src, dst);
    return;
  } catch {
    // EXDEV (another filesystem), EPERM (no hard links): copy instead
  }
  await fs.promises.copyFile(src, dst);
  const fd = await fs.promises.open(dst, 'r+');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/** Fills a fresh temp folder, then puts it in place of `dir` (replacing an older one whole): a
 *  folder is there complete or not at all. The files `fill` writes must be durable on their own
 *  (written with the helpers above, or fsync'd by the native writer). */
export async function replaceDirAtomic(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const parent = path.dirname(path.resolve(dir));
  await fs.promises.mkdir(parent, { recursive: true });
  const tmp = tempPathFor(path.resolve(dir));
  await fs.promises.rm(tmp, { recursive: true, force: true });
  try {
    await fill(tmp);
    if (fs.existsSync(dir)) {
      const old = tempPathFor(path.resolve(dir)) + '.old';
      await fs.promises.rename(dir, old);
      await fs.promises.rename(tmp, dir);
      await fs.promises.rm(old, { recursive: true, force: true });
    } else {
      await fs.promises.rename(tmp, dir);
    }
  } catch (err) {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    throw err;
  }
  fsyncDirSync(parent);
}
