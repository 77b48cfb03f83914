// Pure helpers for test/docs: Markdown links and headings, and citations of outside documents.

export interface Link {
  readonly target: string;
  readonly line: number;
}

/** Relative link targets of a Markdown text (inline links and images), outside fenced code blocks. */
export function markdownLinks(md: string): Link[] {
  const links: Link[] = [];
  let fenced = false;
  md.split('\n').forEach((text, i) => {
    if (/^\s*```/.test(text)) {
      fenced = !fenced;
      return;
    }
    if (fenced) return;
    const unticked = text.replace(/`[^`]*`/g, '');
    for (const m of unticked.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1] ?? '';
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, …
      links.push({ target, line: i + 1 });
    }
  });
  return links;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of every heading in a Markdown text (outside fenced code). */
export function headingSlugs(md: string): Set<string> {
  const out = new Set<string>();
  let fenced = false;
  for (const text of md.split('\n')) {
    if (/^\s*```/.test(text)) fenced = !fenced;
    else if (!fenced) {
      const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
      if (m?.[1]) out.add(slug(m[1]));
    }
  }
  return out;
}

// Built from parts so that this file does not match its own patterns.
const OUTSIDE_DOC = new RegExp(
  `\\b(${['DESIGN', 'DOMAIN', 'CONVENTIONS', 'TOOLCHAIN'].join('|')})(\\.md\\b| \\d+\\b| ")`,
);
const SHARED = new RegExp(['\\.\\.', 'shared\\b'].join('/'));
const MISSING_SECTION = new RegExp(`"${['Known', 'findings'].join(' ')}"`);

export interface Problem {
  readonly line: number;
  readonly text: string;
}

/** Lines that cite a document that is not in the repository. */
export function citationProblems(text: string): Problem[] {
  const out: Problem[] = [];
  text.split('\n').forEach((line, i) => {
    if (OUTSIDE_DOC.test(line) || SHARED.test(line) || MISSING_SECTION.test(line)) {
      out.push({ line: i + 1, text: line.trim().slice(0, 160) });
    }
  });
  return out;
}

export interface SectionCitation {
  readonly doc: string;
  readonly section: string;
  readonly slug: string;
  readonly line: number;
}

/** Citations of a named section: a repository document, a comma, then the heading in double quotes. */
export function namedSectionCitations(text: string): SectionCitation[] {
  const out: SectionCitation[] = [];
  text.split('\n').forEach((line, i) => {
    for (const m of line.matchAll(/\b(CONTRIBUTING\.md|docs\/[a-z0-9-]+\.md), "([^"]+)"/g)) {
      const doc = m[1] ?? '';
      const section = m[2] ?? '';
      out.push({ doc, section, slug: slug(section), line: i + 1 });
    }
  });
  return out;
}

/** Repository-root paths of Markdown documents mentioned in a text (`docs/plan.md`, `gateway/README.md`). */
export function documentMentions(text: string): { path: string; line: number }[] {
  const out: { path: string; line: number }[] = [];
  const re =
    /(?<![\w/.-])((?:docs|device|gateway|protocol|simulator|ops|packaging|bench|runtime|test)\/[\w./-]*\.md|CONTRIBUTING\.md|CHANGELOG\.md)\b/g;
  text.split('\n').forEach((line, i) => {
    for (const m of line.matchAll(re)) out.push({ path: m[1] ?? '', line: i + 1 });
  });
  return out;
}
