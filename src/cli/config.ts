// Flat run configs shared by the training and evaluation commands. Each command declares its
// options once, as a list of OptionSpec (key, type, default, help); from that list come
//   - a CLI flag per option (`warmupRatio` -> `--warmup-ratio`; booleans also get `--no-...`),
//   - the keys a `--config FILE` (JSON or YAML) may set (camelCase, kebab-case or snake_case),
//   - type checks with messages naming the flag or the file and key.
// Precedence: defaults < config file < flags. The resolved config is saved as `<out>/config.json`,
// which `--config` reads back, so a run can be repeated from its own folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { writeFileAtomic } from '../util/atomic_write';

export type ConfigValue = string | number | boolean;

export interface OptionSpec {
  /** camelCase name: the config-file key and (kebab-cased) the flag. */
  key: string;
  type: 'number' | 'int' | 'string' | 'boolean';
  /** Absent: no default (the option is unset unless given; `required` makes that an error). */
  default?: ConfigValue;
  required?: boolean;
  /** Allowed values of a string option. */
  choices?: readonly string[];
  min?: number;
  max?: number;
  /** Placeholder in --help ("<file>"); default from the type. */
  valueName?: string;
  help: string;
}

export type ConfigSchema = readonly OptionSpec[];

export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

export function flagOf(spec: OptionSpec): string {
  return `--${kebab(spec.key)}`;
}

/** camelCase of a camelCase, kebab-case or snake_case key. */
function camel(key: string): string {
  return key.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Checks and converts one value; `where` names its origin for the message ("--lr", "run.yaml: key \"lr\""). */
export function checkValue(spec: OptionSpec, value: unknown, where: string): ConfigValue {
  const fail = (what: string): never => {
    throw new Error(`${where} ${what}, got ${JSON.stringify(value)}`);
  };
  let v: ConfigValue;
  switch (spec.type) {
    case 'number':
    case 'int': {
      const n =
        typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
      if (!Number.isFinite(n)) fail('expects a number');
      if (spec.type === 'int' && !Number.isInteger(n)) fail('expects a whole number');
      if (spec.min !== undefined && n < spec.min) fail(`must be >= ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) fail(`must be <= ${spec.max}`);
      v = n;
      break;
    }
    case 'boolean':
      if (typeof value === 'boolean') v = value;
      else if (value === 'true' || value === 'false') v = value === 'true';
      else return fail('expects true or false');
      break;
    case 'string':
      if (typeof value !== 'string' && typeof value !== 'number') fail('expects a string');
      v = String(value);
      if (spec.choices && !spec.choices.includes(v)) fail(`must be one of ${spec.choices.join(', ')}`);
      break;
  }
  return v;
}

function describeDefault(spec: OptionSpec): string {
  if (spec.required) return ' (required)';
  if (spec.default === undefined) return '';
  return ` (default: ${typeof spec.default === 'string' ? JSON.stringify(spec.default) : String(spec.default)})`;
}

/** Adds `--config FILE` and one flag per option to `cmd`. No commander defaults are set, so a flag's
 *  value is present exactly when the user gave it. */
export function addConfigOptions(cmd: Command, schema: ConfigSchema): Command {
  cmd.option('--config <file>', 'JSON or YAML file setting any of the options below (flags win over it)');
  for (const spec of schema) {
    const flag = flagOf(spec);
    const help = spec.help + (spec.choices ? ` (${spec.choices.join(' | ')})` : '') + describeDefault(spec);
    if (spec.type === 'boolean') {
      cmd.addOption(new Option(flag, help));
      cmd.addOption(new Option(`--no-${kebab(spec.key)}`, `turn ${flag} off`).hideHelp());
    } else {
      const name = spec.valueName ?? (spec.type === 'string' ? '<value>' : '<n>');
      cmd.addOption(
        new Option(`${flag} ${name}`, help).argParser((raw: string) => {
          try {
            return checkValue(spec, raw, flag);
          } catch (e) {
            throw new InvalidArgumentError((e as Error).message);
          }
        }),
      );
    }
  }
  return cmd;
}

/** A config file's document: JSON, or YAML for .yaml/.yml; errors name the file. Empty: undefined. */
export function readConfigDocument(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(
      `${file}: cannot read the config file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  let doc: unknown;
  try {
    doc = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new Error(
      `${file}: not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'} (${(e as Error).message.split('\n')[0]})`,
    );
  }
  return doc ?? undefined;
}

/** Reads a flat config file (JSON, or YAML for .yaml/.yml) and checks every key against `schema`. */
export function readConfigFile(file: string, schema: ConfigSchema): Record<string, ConfigValue> {
  const doc = readConfigDocument(file);
  if (doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new Error(`${file}: a config file must hold one mapping of option names to values`);
  const byKey = new Map(schema.map((s) => [s.key, s]));
  const out: Record<string, ConfigValue> = {};
  for (const [rawKey, value] of Object.entries(doc as Record<string, unknown>)) {
    const key = camel(rawKey);
    const spec = byKey.get(key);
    if (!spec) {
      throw new Error(`${file}: unknown key "${rawKey}" (known keys: ${schema.map((s) => s.key).join(', ')})`);
    }
    if (key in out) throw new Error(`${file}: key "${rawKey}" sets "${key}" a second time`);
    out[key] = checkValue(spec, value, `${file}: key "${rawKey}"`);
  }
  return out;
}

/**
 * The resolved config of a parsed command: defaults, then the config file (`--config`), then the
 * flags given on the command line. Missing required options are an error naming flag and key.
 */
export function resolveConfig<T extends object = Record<string, ConfigValue>>(cmd: Command, schema: ConfigSchema): T {
  const flags = cmd.opts() as Record<string, unknown>;
  const fromFile = typeof flags.config === 'string' ? readConfigFile(flags.config, schema) : {};
  const out: Record<string, ConfigValue> = {};
  for (const spec of schema) {
    const flagValue = flags[spec.key];
    if (flagValue !== undefined) out[spec.key] = flagValue as ConfigValue;
    else if (spec.key in fromFile) out[spec.key] = fromFile[spec.key];
    else if (spec.default !== undefined) out[spec.key] = spec.default;
    else if (spec.required) {
      throw new Error(`missing ${flagOf(spec)} (or "${spec.key}" in a --config file)`);
    }
  }
  return out as T;
}

/** The resolved config as `<dir>/config.json` (atomic), readable back by `--config`. */
export async function saveResolvedConfig(dir: string, config: object): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.json');
  await writeFileAtomic(file, JSON.stringify(config, null, 2) + '\n');
  return file;
}
