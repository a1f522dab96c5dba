import { expect, test } from '@jupyterlab/galata';

import { NOTEBOOK, SHOTS, themeColor, tokens } from './helpers';

test.describe('YAML in %%polyaxon_* cells', () => {
  test('magic cells of the example notebook are YAML, Python cells stay Python', async ({
    page
  }) => {
    await page.notebook.openByPath(NOTEBOOK);
    await page.notebook.activate('02-experiment-tensorboard.ipynb');
    const atom = await themeColor(page, '--jp-mirror-editor-atom-color');
    const number = await themeColor(page, '--jp-mirror-editor-number-color');

    // cell 3: %%polyaxon_component; cell 5: %%polyaxon_dag
    for (const index of [3, 5]) {
      const cell = (await page.notebook.getCellLocator(index))!;
      const spans = await tokens(cell);
      const keys = spans.filter(s => s.color === atom).map(s => s.text);
      expect(keys.length).toBeGreaterThan(3);
      await cell.screenshot({ path: `${SHOTS}/yaml-cell-${index}.png` });
      if (index === 3) {
        expect(keys).toEqual(
          expect.arrayContaining([
            'version',
            'kind',
            'inputs',
            'run',
            'container'
          ])
        );
        expect(spans.find(s => s.text === '1.1')?.color).toBe(number);
      } else {
        expect(keys).toEqual(
          expect.arrayContaining([
            'operations',
            'name',
            'hubRef',
            'termination'
          ])
        );
      }
      // every YAML key shares one token class
      expect(
        new Set(spans.filter(s => s.color === atom).map(s => s.cls)).size
      ).toBe(1);
    }
  });

  test('switching the first line switches the language live', async ({
    page
  }) => {
    await page.notebook.createNew('switch.ipynb');
    const atom = await themeColor(page, '--jp-mirror-editor-atom-color');
    const keysOf = async () =>
      (await tokens((await page.notebook.getCellLocator(0))!))
        .filter(s => s.color === atom)
        .map(s => s.text);

    await page.notebook.setCell(
      0,
      'code',
      'kind: dag\noperations: []  # a comment'
    );
    expect(await keysOf()).toEqual([]);

    await page.notebook.setCell(
      0,
      'code',
      '%%polyaxon_dag demo\nkind: dag\noperations: []  # a comment'
    );
    await expect.poll(keysOf).toEqual(['kind', 'operations']);
    await (await page.notebook.getCellLocator(0))!.screenshot({
      path: `${SHOTS}/switch-yaml.png`
    });

    // %%polyaxon_python's body is Python
    await page.notebook.setCell(
      0,
      'code',
      '%%polyaxon_python step\nkind: dag\noperations: []  # a comment'
    );
    await expect.poll(keysOf).toEqual([]);
    await (await page.notebook.getCellLocator(0))!.screenshot({
      path: `${SHOTS}/switch-python.png`
    });
  });
});
