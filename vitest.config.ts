import { configDefaults, defineConfig } from 'vitest/config';

// How the suite runs (CONTRIBUTING.md, "Tests"). Most files share their worker processes (isolate: false): a
// fresh process and a fresh import of the gateway for each of 160 files cost about as much as the tests
// themselves. Test files keep no state between files that another could see: each makes its own temp dirs,
// ports, databases and processes, and closes them. Two workers run files side by side; much of the suite waits
// on sockets, child processes, PostgreSQL and the browser.
//
// The files in ALONE run afterwards, one at a time, each in a fresh process. The crash and chaos files kill
// child processes in the middle of a burst and count what a loaded machine gets done in a time window, so a
// neighbour's CPU use changes what they see. The PC/SC files share the one pcscd a machine can run (its socket
// path is compiled in) and libpcsclite keeps per-process state about the daemon it last talked to.
const ALONE = [
  'test/gateway/crash.test.ts',
  'test/device/crash.test.ts',
  'test/simulator/chaos.test.ts',
  'test/scale/pg-three-instances.test.ts',
  'test/care/alert-crash.test.ts',
  'test/scale/pg-care-alerts.test.ts',
  'test/pcsc/pcsc-stack.test.ts',
  'test/secure-cards/pcsc-secure.test.ts',
  'test/secure-cards/pcsc-desfire.test.ts',
  'test/secure-cards/end-to-end.test.ts',
];

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
          exclude: [...configDefaults.exclude, 'dist/**', ...ALONE],
          isolate: false,
          maxWorkers: workers,
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
