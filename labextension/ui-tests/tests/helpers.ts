import { IJupyterLabPageFixture } from '@jupyterlab/galata';
import { Locator, Page } from '@playwright/test';

export const NOTEBOOK = 'notebooks/02-experiment-tensorboard.ipynb';
export const SHOTS = 'test-results/screenshots';

/** Text and computed colour of every highlighted span of a cell editor. */
export async function tokens(
  cell: Locator
): Promise<{ text: string; cls: string; color: string }[]> {
  return cell.locator('.cm-content .cm-line span').evaluateAll(els =>
    els.map(e => ({
      text: (e.textContent ?? '').trim(),
      cls: e.className,
      color: getComputedStyle(e).color
    }))
  );
}

/** The colour a theme variable resolves to (what a token of that kind is painted with). */
export async function themeColor(
  page: Page,
  variable: string
): Promise<string> {
  return page.evaluate(v => {
    const probe = document.createElement('span');
    probe.style.color = `var(${v})`;
    document.body.appendChild(probe);
    const color = getComputedStyle(probe).color;
    probe.remove();
    return color;
  }, variable);
}

export async function openRunsPanel(
  page: IJupyterLabPageFixture
): Promise<Locator> {
  const panel = page.locator('#polynb-runs-panel');
  if (!(await panel.isVisible())) {
    await page.sidebar.openTab('polynb-runs-panel');
  }
  await panel.waitFor({ state: 'visible' });
  return panel;
}

/**
 * Record every status the runs panel shows for each op name (a MutationObserver, so statuses
 * shown for a few hundred milliseconds are not missed between polls).
 */
export async function recordStatuses(page: Page): Promise<void> {
  await page.evaluate(() => {
    const seen: Record<string, string[]> = {};
    (window as any).__polynbSeen = seen;
    const scan = () => {
      document
        .querySelectorAll<HTMLElement>(
          '#polynb-runs-panel .polynb-op, #polynb-runs-panel .polynb-run'
        )
        .forEach(el => {
          const name =
            el.dataset.name ??
            `run:${el.querySelector('.polynb-run-name')?.textContent ?? ''}`;
          const status = el.dataset.status ?? '';
          const list = (seen[name] ??= []);
          if (list[list.length - 1] !== status) {
            list.push(status);
          }
        });
    };
    new MutationObserver(scan).observe(document.body, {
      subtree: true,
      childList: true,
      attributes: true,
      attributeFilter: ['data-status']
    });
    scan();
  });
}

export async function seenStatuses(
  page: Page
): Promise<Record<string, string[]>> {
  return page.evaluate(() => (window as any).__polynbSeen ?? {});
}

/** The label of the main-area widget that has focus (the notebook must keep it). */
export async function currentLabel(page: Page): Promise<string | undefined> {
  return page.evaluate(
    () => (window as any).jupyterapp.shell.currentWidget?.title.label
  );
}

/**
 * Put `source` into a cell through its model: typing (Galata's setCell) goes through the editor's
 * auto-indentation, which re-indents YAML and Python bodies.
 */
export async function setSource(
  page: IJupyterLabPageFixture,
  index: number,
  source: string
): Promise<void> {
  await page.evaluate(
    ([i, src]) => {
      const panel = (window as any).jupyterapp.shell.currentWidget;
      panel.content.widgets[i as number].model.sharedModel.setSource(src);
    },
    [index, source] as [number, string]
  );
}

/** Add a code cell at the end with `source` (set through the model) and return its index. */
export async function appendCell(
  page: IJupyterLabPageFixture,
  source: string
): Promise<number> {
  await page.notebook.addCell('code', '');
  const index = (await page.notebook.getCellCount()) - 1;
  await setSource(page, index, source);
  return index;
}
