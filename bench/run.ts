// `npm run bench [-- NAME...]`: runs the named benches (default: all) one after another.
import * as fs from 'node:fs';
import * as path from 'node:path';

async function main(): Promise<void> {
  const here = __dirname;
  const all = fs
    .readdirSync(here)
    .filter((f) => f.endsWith('.js') && !['run.js', 'harness.js'].includes(f))
    .map((f) => f.replace(/\.js$/, ''));
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((w) => !all.includes(w));
  if (unknown.length) throw new Error(`unknown bench ${unknown.join(', ')} (have: ${all.join(', ')})`);
  for (const name of wanted.length ? wanted : all) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path.join(here, name)) as { run: () => Promise<unknown> };
    await mod.run();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
