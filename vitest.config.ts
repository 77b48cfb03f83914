import { configDefaults, defineConfig } from 'vitest/config';

// How the suite runs (CONTRIBUTING.md, "Node versions"). Most files share their worker processes (isolate: false): a
// fresh process and a fresh import of the gateway for each of 160 files cost about as much as the tests
// themselves. Test files keep no state between files that another could see: each makes its own temp dirs,
// ports, databases and processes, and closes them. Two workers run files side by side; much of the suite waits
// on sockets, child processes, PostgreSQL and the browser.
//
// The files in ALONE run afterwards, one at a time, each in a fresh process: they kill child processes in the
// middle of a burst and count what a loaded machine gets done in a time window, so a neighbour's CPU use changes
// what they see.
const ALONE = [
  'test/gateway/crash.test.ts',
  'test/device/crash.test.ts',
  'test/simulator/chaos.test.ts',
  'test/scale/pg-three-instances.test.ts',
  'test/scale/pg-care-alerts.test.ts',
  'test/care/alert-crash.test.ts',
];

// The PC/SC files need a fresh process each: libpcsclite keeps per-process state about the daemon it last
// talked to (pcsc-stack failed all 17 tests in a worker that had run another PC/SC file). Each starts its own
// pcscd in a mount namespace (test/pcsc/pcscd-fixture.ts), so they run side by side, also with other Node
// majors' suites; until 2026-12-07 the one pcscd of the machine was taken under a lock per file, and a file
// waiting for it held a worker. They run in the own-process project (in a vitest of their own their worker
// hung twice, spinning with its stopped pcscd unreaped).
const PCSC = [
  'test/pcsc/pcsc-stack.test.ts',
  'test/secure-cards/pcsc-secure.test.ts',
  'test/secure-cards/pcsc-desfire.test.ts',
  'test/secure-cards/end-to-end.test.ts',
];

// The files in OWN_PROCESS run beside the shared ones, but each in a fresh process: the PC/SC files, and two
// files that run gateway child processes posting signed webhooks to a fake backend in the test's own process.
// Those two, in a worker that had run many files, waited in vain for events at that backend: pg-gateway-process
// (twice, Node 20 and 24) and pg-reports-instances (2026-12-07, on Node 20, 22 and 24). All those runs were at
// night in Stockholm, when the web files pin the clock to daytime (test/support/daytime.ts); the pin was never
// undone, so later files in the worker ran hours ahead and the backend refused the children's signatures as
// too old. test/support/per-file-setup.ts now undoes the pin after every file; these two stay here until a full
// night run shows them passing in a shared worker.
const OWN_PROCESS = [
  ...PCSC,
  'test/scale/pg-gateway-process.test.ts',
  'test/scale/pg-reports-instances.test.ts',
];

// Checks of the repository's files, not of how Node runs the code: the import rules through the linter's own
// config (boundaries, gateway-layers) and the docs' links. Like the typecheck and the linter, they run once, on
// the machine's Node; scripts/test.sh sets VISITTAG_TEST_STATIC=0 for the other majors' lanes.
const STATIC = [
  'test/toolchain/boundaries.test.ts',
  'test/toolchain/gateway-layers.test.ts',
  'test/toolchain/sql-in-store.test.ts',
  'test/docs/docs-links.test.ts',
];
const skipStatic = process.env.VISITTAG_TEST_STATIC === '0';

const workers = Number(process.env.VISITTAG_TEST_WORKERS ?? 2);

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // the clock pin of the web files undone after each file (test/support/per-file-setup.ts)
    setupFiles: ['test/support/per-file-setup.ts'],
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'shared',
          include: ['**/*.test.ts'],
          exclude: [
            ...configDefaults.exclude,
            'dist/**',
            ...ALONE,
            ...OWN_PROCESS,
            ...(skipStatic ? STATIC : []),
          ],
          isolate: false,
          maxWorkers: workers,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'own-process',
          include: OWN_PROCESS,
          isolate: true,
          maxWorkers: workers,
          hookTimeout: 180_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'alone',
          include: ALONE,
          isolate: true,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
