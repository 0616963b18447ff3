// The cross-modality / cross-task matrix (scorer.ts crossMatrix) as a heat-map chart: one row per
// model's predictions, one column per test group, each cell coloured by accuracy with the number
// printed in it; a group a model has no questions for is a grey "n/a" cell, never a 0.
import type { ChartSpec } from '../report/charts';
import type { CrossMatrix } from './scorer';

const AXIS_NAME: Record<CrossMatrix['axis'], string> = { modality: 'modality', task: 'task', dataset: 'dataset' };

export function crossMatrixChart(m: CrossMatrix): ChartSpec {
  const axis = AXIS_NAME[m.axis];
  const cells = m.rows.flatMap((row, i) =>
    m.columns.map((col, j) => {
      const a = m.accuracy[i][j];
      return {
        model: row,
        group: col,
        accuracy: a === null ? null : Math.round(1000 * a) / 10,
        label: a === null ? 'n/a' : (100 * a).toFixed(1),
      };
    }),
  );
  // long group names (OmniMedVQA's "Magnetic Resonance Imaging") need slanted labels; short ones not
  const slant = m.columns.some((c) => c.length > 8);
  return {
    title: {
      text: `Accuracy by model and test ${axis}`,
      subtitle: `one row per predictions file, one column per ${axis} of the benchmark; n/a: no questions`,
    },
    data: { values: cells },
    width: Math.max(240, 78 * m.columns.length),
    height: Math.max(60, 36 * m.rows.length),
    encoding: {
      x: {
        field: 'group',
        type: 'nominal',
        title: `tested on (${axis})`,
        sort: m.columns,
        axis: { labelAngle: slant ? -35 : 0, labelLimit: 220, orient: 'bottom' },
      },
      y: { field: 'model', type: 'nominal', title: 'model (predictions)', sort: m.rows, axis: { labelLimit: 220 } },
    },
    layer: [
      { mark: { type: 'rect', stroke: 'white', strokeWidth: 2 }, encoding: { color: { value: '#dddddd' } } },
      {
        transform: [{ filter: 'datum.accuracy !== null' }],
        mark: { type: 'rect', stroke: 'white', strokeWidth: 2 },
        encoding: {
          color: {
            field: 'accuracy',
            type: 'quantitative',
            title: 'accuracy (%)',
            scale: { scheme: 'blues', domain: [0, 100] },
            legend: { gradientLength: Math.max(120, Math.min(240, 36 * m.rows.length)), values: [0, 25, 50, 75, 100] },
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 12 },
        encoding: {
          text: { field: 'label', type: 'nominal' },
          // dark cells get white numbers, light ones black: readable at either end of the scale
          color: {
            condition: { test: 'datum.accuracy !== null && datum.accuracy > 60', value: 'white' },
            value: 'black',
          },
        },
      },
    ],
  } as ChartSpec;
}
