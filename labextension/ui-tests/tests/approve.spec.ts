import { expect, test } from '@jupyterlab/galata';

import { appendCell, openRunsPanel, setSource } from './helpers';

/**
 * The runs panel's external sources and its Approve button, against the protocol alone (a
 * kernel-side comm written in the test, no engine): a run whose op waits for an approval shows
 * its sources and Approve / Invalidate; a click sends `approve` to the kernel and shows
 * "Approving…" until the op no longer waits.
 */
const KERNEL = String.raw`
import json, time
from comm import create_comm
got = []
hello = {"type": "hello", "protocol": 1, "version": "test", "features": ["runs", "run_update", "approve"]}
c = create_comm(target_name="polynb", data=hello)
c.on_msg(lambda m: got.append(m["content"]["data"]))
def run(waiting):
    gate = {"uuid": "g" * 32, "name": "gate", "kind": "job", "status": "created" if waiting else "running",
            "url": None, "awaiting_approval": waiting}
    return {"uuid": "d" * 32, "name": "gated", "kind": "dag", "status": "running",
            "created_at": "2026-12-01T00:00:00.000Z", "finished_at": None, "counts": {"created": 1},
            "awaiting_approval": waiting, "ops": [gate],
            "sources": [{"name": "polynb approve", "kind": "approval", "awaited_by": ["gate"],
                         "events": 0 if waiting else 1, "last_event": None},
                        {"name": "connections.repo", "kind": "connection", "awaited_by": ["gate"],
                         "events": 1, "last_event": "connection_git_commit 3f1c"}]}
c.send({"type": "run_update", "run": run(True)})
`;

test('runs panel: sources listed, Approve sends approve and waits for the op', async ({
  page
}) => {
  await page.notebook.createNew('approve.ipynb');
  await setSource(page, 0, KERNEL);
  await page.notebook.runCell(0, { inplace: true });

  const panel = await openRunsPanel(page);
  const sources = panel.locator('.polynb-source');
  await expect(sources).toHaveCount(2);
  await expect(
    panel.locator('.polynb-source[data-name="connections.repo"]')
  ).toContainText('connections.repo → gate · 1 event');
  const gate = panel.locator('.polynb-op[data-name="gate"]');
  const approve = gate.locator('.polynb-approve');
  await expect(approve).toHaveText('Approve');
  await expect(gate.locator('.polynb-invalidate')).toBeVisible();
  await page.screenshot({
    path: 'test-results/screenshots/runs-panel-approve.png'
  });

  await approve.click();
  await expect(approve).toHaveText('Approving…');
  await expect(approve).toBeDisabled();

  const show = await appendCell(
    page,
    'time.sleep(0.5); print(json.dumps([m for m in got if m["type"] == "approve"]))'
  );
  await page.notebook.runCell(show, { inplace: true });
  const sent = JSON.parse(
    (await page.notebook.getCellTextOutput(show))!.join('')
  );
  expect(sent).toEqual([
    { type: 'approve', uuid: 'g'.repeat(32), approved: true }
  ]);

  // the kernel says the op no longer waits: the buttons go
  const done = await appendCell(
    page,
    'c.send({"type": "run_update", "run": run(False)})'
  );
  await page.notebook.runCell(done, { inplace: true });
  await expect(gate.locator('.polynb-approve')).toHaveCount(0);
  await expect(
    panel.locator('.polynb-source[data-name="polynb approve"]')
  ).toContainText('1 event');
});
