/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for tests:
 * every line must be a `# HELP`/`# TYPE` comment or a sample `name{labels} value`.
 * Throws naming the line that does not parse.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|NaN|\+Inf|-Inf))(?: -?[0-9]+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"/g;
const COMMENT = /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*$/;

export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line === '' || COMMENT.test(line)) return;
    const m = SAMPLE.exec(line);
    if (!m?.[1] || m[3] === undefined)
      throw new Error(`metrics line ${i + 1} does not parse: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) if (l[1]) labels[l[1]] = l[2] ?? '';
    out.push({ name: m[1], labels, value: Number(m[3]) });
  });
  return out;
}

/** Sum of the samples named `name` whose labels include `labels`. */
export function sumOf(samples: Sample[], name: string, labels: Record<string, string> = {}) {
  return samples
    .filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
