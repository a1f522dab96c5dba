import { ITabHost, TabReuse } from '../tabs';

class FakeTab {
  constructor(
    public url: string,
    public title: string,
    public near: FakeTab | null,
    public anchor: string | null
  ) {}
  isDisposed = false;
}

class FakeHost implements ITabHost<FakeTab> {
  log: string[] = [];
  create(
    url: string,
    title: string,
    near: FakeTab | null,
    anchor: string | null
  ): FakeTab {
    this.log.push(`create ${url}`);
    return new FakeTab(url, title, near, anchor);
  }
  navigate(tab: FakeTab, url: string, title: string): void {
    this.log.push(`navigate ${url}`);
    tab.url = url;
    tab.title = title;
  }
  reveal(tab: FakeTab): void {
    this.log.push(`reveal ${tab.url}`);
  }
}

describe('TabReuse', () => {
  it('opens one tab per key and reveals it on the same open again', () => {
    const host = new FakeHost();
    const tabs = new TabReuse(host);
    const a = tabs.open('tensorboard:1', '/proxy/1/', 'TB', 'nb-1');
    const b = tabs.open('tensorboard:1', '/proxy/1/', 'TB', 'nb-1');
    expect(a.result).toBe('created');
    expect(b.result).toBe('revealed');
    expect(b.tab).toBe(a.tab);
    expect(a.tab.anchor).toBe('nb-1');
    expect(host.log).toEqual(['create /proxy/1/', 'reveal /proxy/1/']);
  });

  it('navigates the same tab when the URL of a key changes (new port after a restart)', () => {
    const host = new FakeHost();
    const tabs = new TabReuse(host);
    const a = tabs.open('k', '/proxy/1/', 'TB');
    const b = tabs.open('k', '/proxy/2/', 'TB 2');
    expect(b).toEqual({ tab: a.tab, result: 'navigated' });
    expect(a.tab.title).toBe('TB 2');
    expect(tabs.open('k', '/proxy/2/', 'TB 2').result).toBe('revealed');
  });

  it('groups a second key with the newest open tab, not beside the notebook again', () => {
    const tabs = new TabReuse(new FakeHost());
    const a = tabs.open('k1', '/a/', 'A', 'nb');
    const b = tabs.open('k2', '/b/', 'B', 'nb');
    expect(a.tab.near).toBeNull();
    expect(b.tab.near).toBe(a.tab);
    expect(tabs.size).toBe(2);
  });

  it('forgets tabs the user closed', () => {
    const host = new FakeHost();
    const tabs = new TabReuse(host);
    const a = tabs.open('k', '/a/', 'A');
    a.tab.isDisposed = true;
    expect(tabs.get('k')).toBeUndefined();
    const b = tabs.open('k', '/a/', 'A');
    expect(b.result).toBe('created');
    expect(b.tab).not.toBe(a.tab);
    expect(b.tab.near).toBeNull();
  });
});
