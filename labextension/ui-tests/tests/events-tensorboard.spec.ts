import { expect, test } from '@jupyterlab/galata';

import {
  NOTEBOOK,
  SHOTS,
  currentLabel,
  openRunsPanel,
  recordStatuses,
  seenStatuses
} from './helpers';

const NAME = '02-experiment-tensorboard.ipynb';
const TB_TAB = '.polynb-service-tab';

/** Statuses are coalesced (<= 10 updates/s), so check order, not that each one was shown. */
function inOrder(seen: string[], expected: string[]): boolean {
  let i = 0;
  for (const s of seen) {
    if (s === expected[i]) {
      i++;
    }
  }
  return i === expected.length;
}

test('events notebook: runs panel, TensorBoard tab beside the notebook, reload, stop', async ({
  page
}) => {
  await page.notebook.openByPath(NOTEBOOK);
  await page.notebook.activate(NAME);
  const panel = await openRunsPanel(page);
  await recordStatuses(page);
  // what the TensorBoard page (a frame under /proxy/) asks the server for, and the answers
  const proxiedPage: { url: string; status: number }[] = [];
  page.on('response', response => {
    let frameUrl: string;
    try {
      frameUrl = response.request().frame().url();
    } catch {
      return; // a service worker's request: no frame
    }
    const url = new URL(response.url());
    if (
      url.protocol.startsWith('http') &&
      new URL(frameUrl, url).pathname.startsWith('/proxy/')
    ) {
      proxiedPage.push({ url: url.pathname, status: response.status() });
    }
  });

  await test.step('run the magics: the DAG starts in the background', async () => {
    for (const index of [2, 3, 5]) {
      await page.notebook.runCell(index, { inplace: true });
    }
  });

  const experiment = panel.locator('.polynb-op[data-name="experiment"]');
  const tensorboard = panel.locator('.polynb-op[data-name="tensorboard"]');

  await test.step('the panel shows the run and its ops with live statuses', async () => {
    await expect(panel.locator('.polynb-run-name')).toHaveText([
      'experiment-with-tensorboard'
    ]);
    await expect(tensorboard).toHaveAttribute('data-status', 'running', {
      timeout: 60_000
    });
    await expect(experiment).toHaveAttribute('data-status', 'succeeded', {
      timeout: 60_000
    });
    const seen = await seenStatuses(page);
    console.log('statuses seen in the panel', JSON.stringify(seen));
    expect(inOrder(seen['experiment'], ['running', 'succeeded'])).toBe(true);
    expect(seen['tensorboard'][0]).not.toBe('running'); // it waited for the event
    // colours follow the status
    await expect(experiment.locator('.polynb-status')).toHaveClass(
      /polynb-status-succeeded/
    );
    await expect(tensorboard.locator('.polynb-status')).toHaveClass(
      /polynb-status-running/
    );
    await expect(tensorboard.locator('.polynb-open')).toBeVisible();
    await expect(tensorboard.locator('.polynb-stop')).toBeEnabled();
  });

  await test.step('a TensorBoard tab opened beside the notebook, without taking focus', async () => {
    const tab = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab', {
      hasText: 'TensorBoard · experiment-with-tensorboard'
    });
    await expect(tab).toHaveCount(1);
    const frame = page.frameLocator(`${TB_TAB} iframe`);
    await expect(frame.locator('tb-webapp')).toBeAttached({ timeout: 60_000 });
    // the real TensorBoard app, served through jupyter-server-proxy (same origin)
    const src = await page.locator(`${TB_TAB} iframe`).getAttribute('src');
    expect(src).toMatch(/^\/proxy\/\d+\/$/);
    await expect(frame.locator('body')).toContainText(
      /TensorBoard|Time Series|Scalars/i,
      {
        timeout: 60_000
      }
    );
    // every asset (its fonts too) loads through the proxy: nothing is asked of the server's root
    await expect
      .poll(() => proxiedPage.some(r => r.url.includes('/font-roboto/')))
      .toBe(true);
    const escaped = proxiedPage.filter(
      r => !r.url.startsWith(src!) || r.status >= 400
    );
    expect(escaped).toEqual([]);
    expect(await currentLabel(page)).toBe(NAME);
    // side by side: the TensorBoard area is to the right of the notebook
    const nb = await page.locator('.jp-NotebookPanel').boundingBox();
    const tb = await page.locator(TB_TAB).boundingBox();
    expect(tb!.x).toBeGreaterThan(nb!.x + nb!.width / 2);
    await page.waitForTimeout(1500); // let TensorBoard paint its first frame
    await page.screenshot({ path: `${SHOTS}/tensorboard-tab.png` });
  });

  await test.step('the run finishes; the service keeps running', async () => {
    await page.notebook.runCell(7, { inplace: true }); // run.wait()
    await expect(panel.locator('.polynb-run')).toHaveAttribute(
      'data-status',
      'succeeded'
    );
    await expect(tensorboard).toHaveAttribute('data-status', 'running');
    await panel.screenshot({ path: `${SHOTS}/runs-panel.png` });
  });

  await test.step('a page reload gets the state back from the kernel', async () => {
    // an unsaved notebook makes the page ask before unloading; saved, it just reloads
    await page.notebook.save();
    page.once('dialog', dialog => void dialog.accept());
    // Galata's ready check expects the Launcher in front; the restored layout has the notebook
    await page.reload({ waitForIsReady: false });
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
    const reloaded = await openRunsPanel(page);
    await expect(reloaded.locator('.polynb-run-name')).toHaveText(
      ['experiment-with-tensorboard'],
      {
        timeout: 60_000
      }
    );
    await expect(
      reloaded.locator('.polynb-op[data-name="tensorboard"]')
    ).toHaveAttribute('data-status', 'running');
    await expect(
      reloaded.locator('.polynb-op[data-name="experiment"]')
    ).toHaveAttribute('data-status', 'succeeded');
  });

  await test.step('Stop in the panel stops the service', async () => {
    const tb = page.locator(
      '#polynb-runs-panel .polynb-op[data-name="tensorboard"]'
    );
    await tb.locator('.polynb-stop').click();
    await expect(tb).toHaveAttribute('data-status', 'stopped', {
      timeout: 60_000
    });
    await expect(tb.locator('.polynb-stop')).toHaveCount(0);
    await page
      .locator('#polynb-runs-panel')
      .screenshot({ path: `${SHOTS}/runs-panel-stopped.png` });
  });
});
