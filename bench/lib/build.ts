/**
 * Transpiles the TypeScript a worker needs into plain JS (TypeScript's own transpiler, no type check), so
 * footprint rows measure what a Pi runs (`npm run build` → dist/, plain `node`), not the tsx loader.
 * Output goes to bench/results/build/ (gitignored), keeping the tree so `.js` imports and node_modules resolve.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';
import { ROOT } from './ctx.js';

function* tsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'node_modules' && name !== 'results') yield* tsFiles(p);
    } else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) yield p;
  }
}

/** Transpiles `dirs` (relative to the repo root) into `<outDir>/<same path>.js`; returns outDir. */
export function transpileTree(dirs: string[], outDir = join(ROOT, 'bench/results/build')): string {
  for (const d of dirs) {
    for (const file of tsFiles(join(ROOT, d))) {
      const out = join(outDir, relative(ROOT, file)).replace(/\.ts$/, '.js');
      const js = ts.transpileModule(readFileSync(file, 'utf8'), {
        fileName: file,
        compilerOptions: {
          module: ts.ModuleKind.ESNext,
          target: ts.ScriptTarget.ES2022,
          verbatimModuleSyntax: true,
          esModuleInterop: true,
        },
      }).outputText;
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, js);
    }
  }
  return outDir;
}
