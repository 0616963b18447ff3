// `medgr2 data ...`: the data tools, one file per subcommand (data_<name>.ts), registered here.
import type { Command } from 'commander';
import { registerDataImport } from './data_import';
import { registerDataPreview } from './data_preview';
import { registerDataSplit } from './data_split';
import { registerDataSynth } from './data_synth';

export function registerData(program: Command): void {
  const data = program.command('data').description('import, split, synthesize and preview medical VQA data');
  registerDataImport(data);
  registerDataSplit(data);
  registerDataSynth(data);
  registerDataPreview(data);
}
