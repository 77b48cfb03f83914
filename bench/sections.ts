/** The benchmark sections, in run order. Each yields one or more rows; `skeleton` names them for n/a. */
import { componentPresent, type RowContext } from './lib/ctx.js';
import type { Profile, Row } from './lib/types.js';
import { ingestRows, measureIngest } from './rows/ingest.js';

type Skeleton = Pick<Row, 'id' | 'figure' | 'generator' | 'unit' | 'target'>;

export interface Section {
  id: string;
  requires: string[];
  present(rel: string): boolean;
  skeleton(p: Profile): Skeleton[];
  run(ctx: RowContext): Promise<Row[]>;
}

export const SECTIONS: Section[] = [
  {
    id: 'ingest',
    requires: [],
    present: componentPresent,
    skeleton: () => [
      {
        id: 'ingest-vs-mosquitto',
        figure: 'gateway durable ingest vs Mosquitto QoS 1 relay',
        generator: 'lightweight MQTT clients',
        unit: 'taps/s',
        target: '≥ 1.0×',
      },
      {
        id: 'ingest-vs-glue',
        figure: 'gateway durable ingest vs Mosquitto + SQLite glue',
        generator: 'lightweight MQTT clients',
        unit: 'taps/s',
        target: '≥ 3.0×',
      },
    ],
    run: async (ctx) => ingestRows(await measureIngest(ctx), ctx),
  },
];
