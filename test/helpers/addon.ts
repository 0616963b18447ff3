// Shared test helpers: the addon, CUDA detection, the CLI runner (numeric helpers re-exported).
import { loadAddon } from '../../src/native/loader';

export const addon = loadAddon();
/** True when CUDA tests can run; they pass `{ skip: noCuda }` to node:test. */
export const hasCuda = addon.info().cudaAvailable;
export const noCuda: string | false = hasCuda ? false : 'no CUDA device (CPU-only libtorch or no GPU)';

export { rng, randn, assertClose } from './numeric';
export { runCli, repoRoot, cliPath } from './cli';
