// Loads the native addon once, with an error that says why it failed and which command fixes it.
//
// MEDGR2_ADDON_DIR overrides the folder searched for build/Release/medgr2.node (tests use it to
// exercise the missing-addon path; users can point at a build made elsewhere).
import * as path from 'node:path';
import type { NativeAddon } from './types';

export const BUILD_COMMAND = 'npm run build:native';
export const SETUP_COMMAND = 'bash scripts/setup.sh';

export class AddonLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddonLoadError';
  }
}

/** The package root: dist/src/native/loader.js -> three levels up. */
export function packageRoot(): string {
  return path.resolve(__dirname, '..', '..', '..');
}

export function explainLoadFailure(err: unknown, root: string): string {
  const detail = err instanceof Error ? err.message : String(err);
  if (/No native build was found/i.test(detail)) {
    return (
      `medgr2: the native addon is not built (looked under ${path.join(root, 'build')}).\n` +
      `Fix: run \`${BUILD_COMMAND}\` in ${root} (or \`${SETUP_COMMAND}\` on a fresh machine: ` +
      'it installs libtorch and builds everything).'
    );
  }
  const missingLib = /(lib(torch|c10|gloo|cuda|cudart|nvrtc)[\w.-]*\.so[\w.]*): cannot open shared object file/.exec(
    detail,
  );
  if (missingLib) {
    return (
      `medgr2: the native addon is built but libtorch cannot be loaded (${missingLib[1]} not found).\n` +
      'Fix: install it (`apt-get install libtorch-dev`, or `' +
      SETUP_COMMAND +
      '`), or, when the addon was ' +
      'built against another libtorch, set MEDGR2_LIBTORCH to that folder and run `' +
      BUILD_COMMAND +
      '` again.\n' +
      `Loader said: ${detail}`
    );
  }
  if (/undefined symbol|version `[^']+' not found|wrong ELF class/.test(detail)) {
    return (
      'medgr2: the native addon does not match the libtorch or Node.js found at run time.\n' +
      `Fix: rebuild it against the libtorch you use: \`${BUILD_COMMAND}\`.\nLoader said: ${detail}`
    );
  }
  return `medgr2: the native addon failed to load.\nFix: rebuild it with \`${BUILD_COMMAND}\`.\nLoader said: ${detail}`;
}

let cached: NativeAddon | undefined;

/** The native addon; throws AddonLoadError with the fixing command when it cannot be loaded. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const root = process.env.MEDGR2_ADDON_DIR ? path.resolve(process.env.MEDGR2_ADDON_DIR) : packageRoot();
  try {
    // node-gyp-build looks in build/Release, build/Debug and prebuilds/ under `root`.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => unknown;
    cached = load(root) as NativeAddon;
  } catch (err) {
    throw new AddonLoadError(explainLoadFailure(err, root));
  }
  return cached;
}
