/**
 * External sources of a run's events in the runs panel: the connections, custom events and
 * approvals its ops wait for (the kernel's `RunSummary.sources`), one line each with the ops
 * they lead to and how many events they delivered. Plain DOM, so jest renders it.
 */

import { ISourceSummary } from './protocol';
import { sourceLabel } from './runs';

/** One source as a list item: `◇ connections.repo → retrain · 1 event`. */
export function renderSource(source: ISourceSummary): HTMLElement {
  const item = document.createElement('li');
  item.className = `polynb-source polynb-source-${source.kind}`;
  item.dataset.name = source.name;
  item.dataset.kind = source.kind;
  const icon = document.createElement('span');
  icon.className = 'polynb-source-icon';
  icon.textContent = '\u25c7';
  const label = document.createElement('span');
  label.className = 'polynb-source-label';
  label.textContent = sourceLabel(source);
  label.title = source.last_event
    ? `${source.kind}: last event ${source.last_event}`
    : `${source.kind}: no event yet`;
  item.append(icon, label);
  return item;
}
