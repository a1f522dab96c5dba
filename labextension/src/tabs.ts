/**
 * One Lab tab per `reuse_key`: the kernel may send the same `open` again (kernel restart,
 * `state_request`), and a service whose port changed keeps its tab. The DOM side is behind
 * `ITabHost` so the reuse rules are unit-tested on their own.
 */

export interface ITab {
  readonly isDisposed: boolean;
}

export interface ITabHost<T extends ITab> {
  /**
   * Open a new tab; `near` is an open tab of ours to group with, else the tab splits beside
   * the widget `anchor` (the notebook the message came from).
   */
  create(url: string, title: string, near: T | null, anchor: string | null): T;
  /** Point an open tab at a new URL (reloads it). */
  navigate(tab: T, url: string, title: string): void;
  /** Bring the tab to the front of its area without taking focus. */
  reveal(tab: T): void;
}

export type OpenResult = 'created' | 'navigated' | 'revealed';

interface IEntry<T> {
  tab: T;
  url: string;
}

export class TabReuse<T extends ITab> {
  constructor(private readonly host: ITabHost<T>) {}

  open(
    key: string,
    url: string,
    title: string,
    anchor: string | null = null
  ): { tab: T; result: OpenResult } {
    this.prune();
    const entry = this.tabs.get(key);
    if (entry) {
      if (entry.url !== url) {
        entry.url = url;
        this.host.navigate(entry.tab, url, title);
        return { tab: entry.tab, result: 'navigated' };
      }
      this.host.reveal(entry.tab);
      return { tab: entry.tab, result: 'revealed' };
    }
    const near = this.newest();
    const tab = this.host.create(url, title, near, anchor);
    this.tabs.set(key, { tab, url });
    return { tab, result: 'created' };
  }

  get(key: string): T | undefined {
    this.prune();
    return this.tabs.get(key)?.tab;
  }

  get size(): number {
    this.prune();
    return this.tabs.size;
  }

  /** Tabs closed by the user are forgotten: the next `open` creates a new one. */
  private prune(): void {
    for (const [key, entry] of this.tabs) {
      if (entry.tab.isDisposed) {
        this.tabs.delete(key);
      }
    }
  }

  private newest(): T | null {
    let last: T | null = null;
    for (const entry of this.tabs.values()) {
      last = entry.tab;
    }
    return last;
  }

  private readonly tabs = new Map<string, IEntry<T>>();
}
