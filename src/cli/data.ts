// `medgr2 data ...`: the data tools, one file per subcommand (data_<name>.ts), registered here.
import type { Command } from 'commander';

export function registerData(program: Command): void {
  const data = program.command('data').description('import, split, synthesize and preview medical VQA data');
  void data; // subcommands register here, e.g. registerDataImport(data);
}
