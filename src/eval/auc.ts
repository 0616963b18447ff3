// How well a judge separates labelled pairs: ROC AUC (the probability that a random positive scores
// above a random negative, ties counting one half: the Mann–Whitney U statistic over n+·n−) and the
// accuracy of "reward >= threshold" (default 0.5).

/** ROC AUC by ranks (average ranks for ties); NaN when either class is empty. */
export function auc(scores: readonly number[], labels: readonly boolean[]): number {
  if (scores.length !== labels.length) throw new Error(`auc: ${scores.length} scores but ${labels.length} labels`);
  const idx = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b]);
  const rank = new Array<number>(scores.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]] === scores[idx[i]]) j++;
    for (let k = i; k <= j; k++) rank[idx[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  let pos = 0;
  let rankSum = 0;
  labels.forEach((l, i) => {
    if (l) {
      pos++;
      rankSum += rank[i];
    }
  });
  const neg = labels.length - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

export function accuracyAt(scores: readonly number[], labels: readonly boolean[], threshold = 0.5): number {
  if (scores.length === 0) return NaN;
  let ok = 0;
  scores.forEach((s, i) => (ok += s >= threshold === labels[i] ? 1 : 0));
  return ok / scores.length;
}
