// The gateway's layering, checked in `npm test` (test/toolchain/gateway-layers.test.ts) and by hand with
// `npx depcruise --config .dependency-cruiser.cjs gateway`. The rules are described in
// gateway/src/store/README.md ("Layering").
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'gateway-no-cycles',
      severity: 'error',
      comment:
        'An import cycle inside gateway/: move the shared piece down (e.g. settings to where they are used).',
      from: { path: '^gateway/' },
      to: { circular: true },
    },
    {
      name: 'gateway-db-drivers-only-in-store',
      severity: 'error',
      comment:
        'Only gateway/src/store/ talks to a database driver: go through a store port (store/ports.ts).',
      from: { path: '^gateway/', pathNot: '^gateway/src/store/' },
      to: { path: '(^|/)node_modules/(@types/)?(better-sqlite3|pg|pg-[a-z-]+)(/|$)' },
    },
    {
      name: 'gateway-no-composition-root-from-modules',
      severity: 'error',
      comment:
        'gateway/index.ts and gateway/main.ts compose the process; modules under gateway/src/ never import them (take what you need as a parameter).',
      from: { path: '^gateway/src/' },
      to: { path: '^gateway/(index|main)\\.ts$' },
    },
    {
      name: 'gateway-store-below-features',
      severity: 'error',
      comment: 'gateway/src/store/ is the floor: it imports protocol/ and itself, never a feature module.',
      from: { path: '^gateway/src/store/' },
      to: { path: '^gateway/', pathNot: '^gateway/src/store/' },
    },
    {
      name: 'gateway-admin-is-http-only',
      severity: 'error',
      comment: 'gateway/src/admin/ is HTTP only: it reaches storage through ports, never an adapter.',
      from: { path: '^gateway/src/admin/' },
      to: { path: '^gateway/src/store/(sqlite|postgres)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
