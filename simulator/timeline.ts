/** A time-ordered queue of simulation steps (scenario actions, faults, restarts). */
export interface TimelineItem {
  atMs: number;
  label: string;
  run: () => void | Promise<void>;
}

export class Timeline {
  private items: (TimelineItem & { n: number })[] = [];
  private n = 0;

  add(item: TimelineItem): void {
    const entry = { ...item, n: this.n++ };
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = this.items[mid] as TimelineItem & { n: number };
      if (m.atMs < entry.atMs || (m.atMs === entry.atMs && m.n < entry.n)) lo = mid + 1;
      else hi = mid;
    }
    this.items.splice(lo, 0, entry);
  }

  peek(): TimelineItem | undefined {
    return this.items[0];
  }

  shift(): TimelineItem | undefined {
    return this.items.shift();
  }

  get size(): number {
    return this.items.length;
  }
}
