import type { Page } from './types.js';

export const REPORT_PAGES: Record<string, Page> = {};
