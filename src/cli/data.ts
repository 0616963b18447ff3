// `medgr2 data ...`: the data tools, one file per subcommand (data_<name>.ts), registered here.
import type { Command } from 'commander';
import { registerDataPreview } from './data_preview';
import { registerDataSynth } from './data_synth';

export function registerData(program: Command): void {
  const data = program.command('data').description('import, split, synthesize and preview medical VQA data');
  registerDataSynth(data);
  registerDataPreview(data);
}
