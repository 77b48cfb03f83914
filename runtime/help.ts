import { EXIT } from './cli.js';

/**
 * The help text both programs print (`visittag-device --help`, `visittag-gateway --help`): one layout, one
 * option table format, and one exit-code paragraph generated from the sysexits table in cli.ts, so the two
 * programs cannot drift apart on what their exit codes mean. `--json` output goes through `jsonText`.
 */
export interface HelpOption {
  /** As typed, with its argument: `--config FILE`. */
  readonly flag: string;
  readonly text: string;
}

export interface HelpSpec {
  /** `visittag-device` */
  readonly program: string;
  /** One line: what the program is. */
  readonly summary: string;
  /** Usage lines after the program name: `run [--config FILE]`. */
  readonly usage: readonly string[];
  /** Optional blocks (title, then lines indented by two spaces), e.g. "Commands". */
  readonly sections?: readonly { readonly title: string; readonly lines: readonly string[] }[];
  readonly options: readonly HelpOption[];
  /** Free paragraphs after the options. */
  readonly notes?: readonly string[];
  /** Where the full reference is: `device/README.md`. */
  readonly reference: string;
}

const EXIT_MEANING: Record<keyof typeof EXIT, string> = {
  ok: 'ok',
  failure: 'runtime error',
  usage: 'usage error',
  data: 'input had nothing usable',
  noInput: 'input file not readable',
  config: 'invalid config',
};

/** The exit-code paragraph every help text ends with (sysexits, the same codes in both programs). */
export function exitCodesText(): string {
  const parts = (Object.keys(EXIT) as (keyof typeof EXIT)[])
    .sort((a, b) => EXIT[a] - EXIT[b])
    .map((k) => `${EXIT[k]} ${EXIT_MEANING[k]}`);
  const lines: string[] = [];
  for (const p of parts.map((x, i) => (i === parts.length - 1 ? `${x}.` : `${x},`))) {
    const last = lines.length - 1;
    if (last >= 0 && `${lines[last]} ${p}`.length <= 100) lines[last] = `${lines[last]} ${p}`;
    else lines.push(`  ${p}`);
  }
  return ['Exit codes (sysexits; the same in visittag-device and visittag-gateway):', ...lines].join('\n');
}

/** The help text: summary, usage, sections, options (aligned), notes, exit codes, reference. */
export function formatHelp(spec: HelpSpec): string {
  const width = Math.max(...spec.options.map((o) => o.flag.length), 0) + 3;
  const blocks = [
    `${spec.program}: ${spec.summary}`,
    ['Usage:', ...spec.usage.map((u) => `  ${spec.program} ${u}`), `  ${spec.program} --help`].join('\n'),
    ...(spec.sections ?? []).map((s) => [`${s.title}:`, ...s.lines.map((l) => `  ${l}`)].join('\n')),
    ['Options:', ...spec.options.map((o) => `  ${o.flag.padEnd(width)}${o.text}`)].join('\n'),
    ...(spec.notes ?? []),
    `${exitCodesText()}\nSee ${spec.reference} for the full reference.`,
  ];
  return blocks.join('\n\n');
}

/** What `--json` prints: one JSON document, two-space indented, newline-terminated by the caller's writer. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
