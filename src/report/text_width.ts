// Text widths in DejaVu Sans, the charts' font, for vega's layout. Headless vega has no canvas to
// measure text and guesses 0.8 em a character, which pushes axis titles far from their labels and
// cuts long tick labels ("OCT (Optical Coherence T…") that fit. These are the fonts' own advance
// widths (hmtx via the cmap), read once from DejaVuSans.ttf and DejaVuSans-Bold.ttf (2.37,
// 2048 units per em) and kept here, so layout does not depend on finding the font file.
const CHARS =
  ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~–—×…²·°µ≤≥';
const REGULAR = [
  651, 821, 942, 1716, 1303, 1946, 1597, 563, 799, 799, 1024, 1716, 651, 739, 651, 690, 1303, 1303, 1303, 1303, 1303,
  1303, 1303, 1303, 1303, 1303, 690, 690, 1716, 1716, 1716, 1087, 2048, 1401, 1405, 1430, 1577, 1294, 1178, 1587, 1540,
  604, 604, 1343, 1141, 1767, 1532, 1612, 1235, 1612, 1423, 1300, 1251, 1499, 1401, 2025, 1403, 1251, 1403, 799, 690,
  799, 1716, 1024, 1024, 1255, 1300, 1126, 1300, 1260, 721, 1300, 1298, 569, 569, 1186, 569, 1995, 1298, 1253, 1300,
  1300, 842, 1067, 803, 1298, 1212, 1675, 1212, 1212, 1075, 1303, 690, 1303, 1716, 1024, 2048, 1716, 2048, 821, 651,
  1024, 1303, 1716, 1716,
];
const BOLD = [
  713, 934, 1067, 1716, 1425, 2052, 1786, 627, 936, 936, 1071, 1716, 778, 850, 778, 748, 1425, 1425, 1425, 1425, 1425,
  1425, 1425, 1425, 1425, 1425, 819, 819, 1716, 1716, 1716, 1188, 2048, 1585, 1561, 1503, 1700, 1399, 1399, 1681, 1714,
  762, 762, 1587, 1305, 2038, 1714, 1741, 1501, 1741, 1577, 1475, 1397, 1663, 1585, 2259, 1579, 1483, 1485, 936, 748,
  936, 1716, 1024, 1024, 1382, 1466, 1214, 1466, 1389, 891, 1466, 1458, 702, 702, 1362, 702, 2134, 1458, 1407, 1466,
  1466, 1010, 1219, 979, 1458, 1335, 1892, 1321, 1335, 1192, 1458, 748, 1458, 1716, 1024, 2048, 1716, 2048, 897, 778,
  1024, 1507, 1716, 1716,
];
const UNITS_PER_EM = 2048;
const regular = new Map([...CHARS].map((c, i) => [c, REGULAR[i]]));
const bold = new Map([...CHARS].map((c, i) => [c, BOLD[i]]));

export interface TextStyle {
  fontSize?: number;
  fontWeight?: string | number;
}

/** Width in pixels of `text` set in DejaVu Sans; a character not in the table counts as a digit. */
export function dejaVuWidth(text: string, style: TextStyle): number {
  const w = style.fontWeight === 'bold' || Number(style.fontWeight) >= 600 ? bold : regular;
  const fallback = w.get('0')!;
  let units = 0;
  for (const c of text) units += w.get(c) ?? fallback;
  return (units / UNITS_PER_EM) * (style.fontSize ?? 11);
}
