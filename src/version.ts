// The package version, read from package.json at run time (one source of truth).
import * as fs from 'node:fs';
import * as path from 'node:path';

export const packageVersion: string = (
  JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
).version;
