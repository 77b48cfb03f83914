import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  citationProblems,
  documentMentions,
  headingSlugs,
  markdownLinks,
  namedSectionCitations,
} from './docs-check.js';

// The repository stands alone: a newcomer who clones it must find every document a README, doc or
// comment points to. This checks (1) every relative Markdown link resolves to a file in the repository (and
// its #anchor to a heading), (2) no file cites a document that lives outside the repository, and (3) every
// citation of a named section (`CONTRIBUTING.md, "Contract suites"`) names a heading that exists.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function repoFiles(): string[] {
  // Tracked files only: what a clone gets (others' uncommitted work in a shared checkout is not judged).
  const out = execFileSync('git', ['ls-files', '-z', '--cached'], {
    cwd: root,
    encoding: 'utf8',
  });
  return out
    .split('\0')
    .filter((f) => f.length > 0 && existsSync(join(root, f)) && statSync(join(root, f)).isFile());
}

const TEXT =
  /\.(md|ts|tsx|js|mjs|cjs|json|sh|yml|yaml|service|rules|conf|txt|css|html)$|(^|\/)(run|control|postinst|postrm|preinst|prerm)$/;

function textFiles(): string[] {
  return repoFiles().filter((f) => TEXT.test(f) && !f.endsWith('package-lock.json'));
}

function headingsOf(file: string): Set<string> {
  return headingSlugs(readFileSync(file, 'utf8'));
}

describe('documentation stays inside the repository', () => {
  it('every relative Markdown link resolves (file and #anchor)', () => {
    const broken: string[] = [];
    const mdFiles = repoFiles().filter((f) => f.endsWith('.md'));
    expect(mdFiles).toContain('README.md');
    expect(mdFiles).toContain('docs/design.md');
    for (const f of mdFiles) {
      for (const link of markdownLinks(readFileSync(join(root, f), 'utf8'))) {
        const [target = '', anchor] = link.target.split('#', 2);
        const targetPath = target === '' ? join(root, f) : resolve(dirname(join(root, f)), decodeURI(target));
        const where = `${f}:${link.line} → ${link.target}`;
        if (!targetPath.startsWith(root + '/') && targetPath !== root) {
          broken.push(`${where} (points outside the repository)`);
          continue;
        }
        if (!existsSync(targetPath)) {
          broken.push(`${where} (no such file: ${relative(root, targetPath)})`);
          continue;
        }
        if (anchor && targetPath.endsWith('.md') && !headingsOf(targetPath).has(anchor.toLowerCase())) {
          broken.push(`${where} (no heading #${anchor} in ${relative(root, targetPath)})`);
        }
      }
    }
    expect(broken, `broken links; fix the path or the heading:\n${broken.join('\n')}`).toEqual([]);
  });

  it('no file cites a document outside the repository', () => {
    const found: string[] = [];
    for (const f of textFiles()) {
      for (const p of citationProblems(readFileSync(join(root, f), 'utf8')))
        found.push(`${f}:${p.line}: ${p.text}`);
    }
    expect(
      found,
      `these cite documents that are not in the repository; point to docs/design.md, docs/domain.md or CONTRIBUTING.md instead:\n${found.join('\n')}`,
    ).toEqual([]);
  });

  it('every named-section citation names an existing heading', () => {
    const bad: string[] = [];
    let seen = 0;
    for (const f of textFiles()) {
      for (const c of namedSectionCitations(readFileSync(join(root, f), 'utf8'))) {
        seen++;
        const file = join(root, c.doc);
        if (!existsSync(file)) bad.push(`${f}:${c.line}: ${c.doc} does not exist`);
        else if (!headingsOf(file).has(c.slug))
          bad.push(`${f}:${c.line}: ${c.doc} has no section "${c.section}"`);
      }
    }
    expect(seen).toBeGreaterThan(5);
    expect(bad, bad.join('\n')).toEqual([]);
  });
  it('every repository document a file mentions by path exists', () => {
    const missing: string[] = [];
    const files = new Set(repoFiles());
    for (const f of textFiles()) {
      for (const m of documentMentions(readFileSync(join(root, f), 'utf8'))) {
        if (!files.has(m.path) && !existsSync(join(root, m.path))) missing.push(`${f}:${m.line}: ${m.path}`);
      }
    }
    expect(missing, `documents mentioned but not in the repository:\n${missing.join('\n')}`).toEqual([]);
  });
});

describe('the checks themselves', () => {
  it('find links, anchors, outside citations and section names', () => {
    const md =
      '# A title\n\nSee [x](../a.md#b-c) and [y](https://example.invalid) and ![i](img.png).\n```\n[no](code.md)\n```\n';
    expect(markdownLinks(md).map((l) => l.target)).toEqual(['../a.md#b-c', 'img.png']);
    expect([...headingSlugs('## Injected clock, timers, ids and logger\n# `x` y\n')]).toEqual([
      'injected-clock-timers-ids-and-logger',
      'x-y',
    ]);
    const outside = ['DESIGN', 'md'].join('.');
    const numbered = ['CONVENTIONS', '7'].join(' ');
    const shared = ['..', 'shared', 'x'].join('/');
    expect(citationProblems(`see ${outside}\n`)).toHaveLength(1);
    expect(citationProblems(`(${numbered})\n`)).toHaveLength(1);
    expect(citationProblems(`read ${shared}\n`)).toHaveLength(1);
    expect(citationProblems('see docs/design.md and CONTRIBUTING.md\n')).toHaveLength(0);
    expect(
      documentMentions('see docs/plan.md and gateway/README.md, not x/docs/a.md').map((m) => m.path),
    ).toEqual(['docs/plan.md', 'gateway/README.md']);
    expect(namedSectionCitations('(CONTRIBUTING.md, "Contract suites")')).toEqual([
      { doc: 'CONTRIBUTING.md', section: 'Contract suites', slug: 'contract-suites', line: 1 },
    ]);
  });
});
