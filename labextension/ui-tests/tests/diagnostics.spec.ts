import { expect, test } from '@jupyterlab/galata';

import { SHOTS, appendCell, openRunsPanel, setSource } from './helpers';

const BAD = [
  '%%polyaxon_component trainer',
  'version: 1.1',
  'kind: component',
  'run:',
  '  kind: job',
  '  contaner: {image: "python:3.11", command: [python, -c, "print(1)"]}'
].join('\n');

test('validation errors are marked at their line and cleared by a good run', async ({
  page
}) => {
  await page.notebook.createNew('diagnostics.ipynb');
  await openRunsPanel(page);
  await setSource(page, 0, '%load_ext polynb');
  await page.notebook.runCell(0, { inplace: true });
  const index = await appendCell(page, BAD);
  expect(index).toBe(1);
  await page.notebook.runCell(1, { inplace: true });

  const cell = (await page.notebook.getCellLocator(1))!;
  const marks = cell.locator('.cm-lintRange-error');
  await expect(marks.first()).toBeVisible();
  const texts = await marks.allTextContents();
  // `contaner:` is the unknown key (line 6, column 3); the missing `container` is at `kind` (line 5)
  expect(texts).toContain('contaner:');
  const lines = await marks.evaluateAll(els =>
    els.map(e => {
      const line = e.closest('.cm-line')!;
      return [...line.parentElement!.children].indexOf(line) + 1;
    })
  );
  expect(lines).toContain(6);
  await cell.screenshot({ path: `${SHOTS}/diagnostics.png` });

  // hovering a mark shows the kernel's message
  await marks.filter({ hasText: 'contaner:' }).hover();
  await expect(page.locator('.cm-tooltip-lint')).toContainText(
    "did you mean 'container'"
  );
  await page.screenshot({
    path: `${SHOTS}/diagnostics-tooltip.png`,
    clip: { x: 0, y: 0, width: 1400, height: 500 }
  });

  await setSource(page, 1, BAD.replace('contaner', 'container'));
  await page.notebook.runCell(1, { inplace: true });
  await expect(cell.locator('.cm-lintRange-error')).toHaveCount(0);
  expect((await page.notebook.getCellTextOutput(1))?.join('')).toContain(
    'registered'
  );
});
