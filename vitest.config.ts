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

// The PC/SC files run in a project of their own, one at a time, each in a fresh process. libpcsclite keeps
// per-process state about the daemon it last talked to (pcsc-stack failed all 17 tests in a worker that had run
// another PC/SC file), and the one pcscd a machine can run (its socket path is compiled in) is taken under a
// lock for a whole file. They mostly wait on pcscd and the virtual reader (about 140 s of wall, little CPU):
// scripts/test.sh runs this project in a vitest of its own beside the shared one, so a file waiting for the
// lock no longer holds one of the shared workers (it held one for about 130 s of every run). A plain
// `npx vitest run` runs them after the shared files, with the alone ones.
const PCSC = [
  'test/pcsc/pcsc-stack.test.ts',
  'test/secure-cards/pcsc-secure.test.ts',
  'test/secure-cards/pcsc-desfire.test.ts',
  'test/secure-cards/end-to-end.test.ts',
];

// The files in OWN_PROCESS run beside the shared ones, but each in a fresh process. Both run gateway child
// processes that post webhooks to a fake backend in the test's own process, and both, in a worker that had run
// many files, waited in vain for events at that backend: pg-gateway-process (twice, Node 20 and 24: too few events
// within 60 s) and pg-reports-instances (in the three-major run of 2026-12-07 on Node 20, 22 and 24: the two
// corrections' events not there within 60 s). Alone and in a fresh worker both pass (pg-reports-instances in 27 s).
// Cause not found; something a file before them leaves in the worker is the likely kind.
const OWN_PROCESS = ['test/scale/pg-gateway-process.test.ts', 'test/scale/pg-reports-instances.test.ts'];

const workers = Number(process.env.VISITTAG_TEST_WORKERS ?? 2);

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'shared',
          include: ['**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'dist/**', ...ALONE, ...OWN_PROCESS, ...PCSC],
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
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'pcsc',
          include: PCSC,
          isolate: true,
          maxWorkers: 1,
          // a file waits in beforeAll for the pcscd lock while another major's PC/SC file holds it
          hookTimeout: 180_000,
          sequence: { groupOrder: 1 },
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
