import { renderSource } from '../sources';

describe('renderSource', () => {
  it('draws a connection as a line with its kind, the ops it leads to and its events', () => {
    const item = renderSource({
      name: 'connections.repo',
      kind: 'connection',
      awaited_by: ['retrain'],
      events: 1,
      last_event: 'connection_git_commit 1a2b3c'
    });
    expect(item.tagName).toBe('LI');
    expect(item.classList.contains('polynb-source-connection')).toBe(true);
    expect(item.dataset.name).toBe('connections.repo');
    expect(item.textContent).toBe(
      '\u25c7connections.repo \u2192 retrain \u00b7 1 event'
    );
    const label = item.querySelector('.polynb-source-label') as HTMLElement;
    expect(label.title).toBe(
      'connection: last event connection_git_commit 1a2b3c'
    );
  });

  it('says when a source has delivered nothing yet, and never injects markup', () => {
    const item = renderSource({
      name: '<img src=x onerror=alert(1)>',
      kind: 'approval',
      awaited_by: [],
      events: 0,
      last_event: null
    });
    expect(item.querySelector('img')).toBeNull();
    expect(item.textContent).toContain('waiting');
    expect(
      (item.querySelector('.polynb-source-label') as HTMLElement).title
    ).toBe('approval: no event yet');
  });
});
