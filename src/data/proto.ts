// The protobuf schemas in proto/, loaded at run time with protobufjs (no generated code to keep in
// sync), plus the TypeScript shapes of the messages this code builds and reads.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

/** proto/ of this package: found by walking up from this file (dist/src/data/ when compiled). */
export function protoDir(): string {
  for (let dir = __dirname; ;) {
    const candidate = path.join(dir, 'proto', 'medgr2.proto');
    if (fs.existsSync(candidate)) return path.dirname(candidate);
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new Error(`proto/medgr2.proto not found above ${__dirname}: is the package installed whole?`);
    dir = parent;
  }
}

let root: protobuf.Root | undefined;

/** The loaded schemas (medgr2.* and tensorboard.*), loaded once. */
export function protoRoot(): protobuf.Root {
  if (!root) {
    const dir = protoDir();
    root = protobuf.loadSync([path.join(dir, 'medgr2.proto'), path.join(dir, 'tensorboard.proto')]);
    root.resolveAll();
  }
  return root;
}

export function messageType(name: string): protobuf.Type {
  return protoRoot().lookupType(name);
}

/** Record types that medgr2 record files hold (the FileHeader names one of these). */
export const RECORD_TYPES = [
  'medgr2.Sample',
  'medgr2.Candidate',
  'medgr2.ScoredCandidate',
  'medgr2.RunManifest',
] as const;
export type RecordTypeName = (typeof RECORD_TYPES)[number];

export type ProvenanceKind = 'KIND_UNSPECIFIED' | 'SEED' | 'GENERATED' | 'IMPORTED';

export interface Provenance {
  kind: ProvenanceKind;
  round: number;
  sourceFile: string;
  sourceLine: number;
  sourceFormat: string;
}

/** The canonical sample (medgr2.Sample) in protobufjs's camelCase field names. */
export interface Sample {
  id: string;
  dataset: string;
  images: string[];
  modality: string;
  modalityOriginal: string;
  task: string;
  taskOriginal: string;
  question: string;
  options: string[];
  answer: string;
  rationale: string;
  provenance: Provenance;
  questionStem: string;
}

export interface Candidate {
  sample: Sample;
  generatorRound: number;
  valid: boolean;
  invalidReason: string;
  raw: string;
}

export interface ScoredCandidate {
  candidate: Candidate;
  reward: number;
  judgeRound: number;
  selected: boolean;
  selectReason: string;
}

export type RunStatus = 'STATUS_UNSPECIFIED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED';

export interface RunManifest {
  stage: string;
  inputs: string[];
  outputs: string[];
  configJson: string;
  startedAt: number;
  finishedAt: number;
  status: RunStatus;
  error: string;
  version: string;
  round: number;
}

/** Encodes a plain object as `typeName`, checking it against the schema first. */
export function encodeMessage(typeName: string, value: object): Uint8Array {
  const type = messageType(typeName);
  const problem = type.verify(type.fromObject(value as Record<string, unknown>));
  if (problem) throw new Error(`cannot encode ${typeName}: ${problem}`);
  return type.encode(type.fromObject(value as Record<string, unknown>)).finish();
}

/** Decodes `bytes` as `typeName` into a plain object with every field present (defaults filled in),
 *  enums as their names and 64-bit integers as numbers. */
export function decodeMessage<T>(typeName: string, bytes: Uint8Array): T {
  const type = messageType(typeName);
  return type.toObject(type.decode(bytes), { defaults: true, arrays: true, enums: String, longs: Number }) as T;
}
