// A model folder's own chat template (Jinja), found and rendered as transformers does:
//   - the processor's template wins: chat_template.jinja, then chat_template.json ("chat_template"),
//     then tokenizer_config.json's "chat_template" (a string, or a list of {name, template} from which
//     "default" is taken);
//   - rendered by @huggingface/jinja (the engine transformers.js uses; trim_blocks and lstrip_blocks on,
//     as transformers compiles templates) with `messages`, `add_generation_prompt` and the tokenizer's
//     special tokens (bos_token, eos_token, pad_token, unk_token) in scope.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';

export interface TemplateMessage {
  role: string;
  content: string | ({ type: 'image' } | { type: 'text'; text: string })[];
}

type Json = Record<string, unknown>;

export class ChatTemplate {
  private readonly compiled: Template;

  /** `where` names the file the template came from, for errors. */
  constructor(
    readonly source: string,
    readonly where: string,
    private readonly specialTokens: Record<string, string> = {},
  ) {
    try {
      this.compiled = new Template(source);
    } catch (e) {
      throw new Error(`${where}: the chat template does not parse (${(e as Error).message})`);
    }
  }

  /** The template's text for `messages` (what HF's apply_chat_template(tokenize=False) returns). */
  render(messages: readonly TemplateMessage[], { addGenerationPrompt = false } = {}): string {
    try {
      return this.compiled.render({
        ...this.specialTokens,
        messages: structuredClone(messages) as unknown as Json[],
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (e) {
      throw new Error(`${this.where}: the chat template failed to render (${(e as Error).message})`);
    }
  }
}

function readJson(file: string): Json {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Json;
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** A special token of tokenizer_config.json as text (it is a string or an AddedToken object). */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

/** The template text of tokenizer_config.json's chat_template field (string or named list). */
function templateOfField(v: unknown, file: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v.find((t) => t && typeof t === 'object' && (t as Json).name === 'default') as Json | undefined;
    if (named && typeof named.template === 'string') return named.template;
    throw new Error(`${file}: field "chat_template" is a list without a "default" template`);
  }
  throw new Error(`${file}: field "chat_template" must be a string or a list of {name, template}`);
}

/** The chat template of a tokenizer / model folder, or null when it has none (ChatML fallback). */
export function loadChatTemplate(dir: string): ChatTemplate | null {
  const configFile = path.join(dir, 'tokenizer_config.json');
  const config = fs.existsSync(configFile) ? readJson(configFile) : {};
  const special: Record<string, string> = {};
  for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
    const t = tokenText(config[key]);
    if (t !== undefined) special[key] = t;
  }
  const jinjaFile = path.join(dir, 'chat_template.jinja');
  if (fs.existsSync(jinjaFile)) return new ChatTemplate(fs.readFileSync(jinjaFile, 'utf8'), jinjaFile, special);
  const jsonFile = path.join(dir, 'chat_template.json');
  if (fs.existsSync(jsonFile)) {
    const t = templateOfField(readJson(jsonFile).chat_template, jsonFile);
    if (t === undefined) throw new Error(`${jsonFile}: no "chat_template" field`);
    return new ChatTemplate(t, jsonFile, special);
  }
  const t = templateOfField(config.chat_template, configFile);
  return t === undefined ? null : new ChatTemplate(t, configFile, special);
}
