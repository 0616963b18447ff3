// MedSynth: the procedurally rendered medical VQA world medgr2 runs on with no download.
export { synthesize, encodePng, MEDSYNTH_VERSION, type SynthOptions, type SynthSummary } from './world';
export { renderImage, type RenderOptions } from './render';
export { sampleTruth, type ImageTruth, type Lesion } from './truth';
export { makeQuestions, AnswerSlots, type OmniRecord } from './questions';
export { Prng, hashString } from '../../util/prng';
export * from './vocab';
