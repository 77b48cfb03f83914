// Copies packages and their run-time dependencies (dependencies + installed optionalDependencies, recursively)
// from a flat node_modules into another folder. Used by build.sh for the native packages the firmware bundle
// leaves external. Usage: node copy-runtime-modules.mjs FROM_NODE_MODULES TO_NODE_MODULES PKG...
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [from, to, ...roots] = process.argv.slice(2);
if (!from || !to || roots.length === 0) {
  console.error('usage: copy-runtime-modules.mjs FROM TO PKG...');
  process.exit(64);
}
const seen = new Set();
const queue = [...roots];
while (queue.length > 0) {
  const name = queue.shift();
  if (seen.has(name)) continue;
  const dir = join(from, name);
  if (!existsSync(join(dir, 'package.json'))) {
    console.error(`copy-runtime-modules: ${name} is not installed in ${from}`);
    process.exit(1);
  }
  seen.add(name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {})) queue.push(dep);
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) {
    if (existsSync(join(from, dep, 'package.json'))) queue.push(dep);
  }
  // Build intermediates are not needed at run time; the compiled addon in build/Release is.
  cpSync(dir, join(to, name), {
    recursive: true,
    filter: (src) => !/\/(build\/Release\/(obj|\.deps)|deps|src|test)(\/|$)/.test(src.slice(dir.length)),
  });
}
console.error(`copied ${seen.size} packages: ${[...seen].sort().join(', ')}`);
