import { IJupyterLabPageFixture, expect, test } from '@jupyterlab/galata';

import { appendCell, currentLabel, setSource } from './helpers';

/**
 * The extension against the protocol alone (a kernel-side comm written in the test, no polynb
 * magics): one tab per reuse_key, `opened` acknowledgements, and the comm target registered
 * again on a new kernel.
 */
const KERNEL = String.raw`
import json, pathlib, subprocess, sys, tempfile, time
from comm import create_comm
d = tempfile.mkdtemp()
pathlib.Path(d, "index.html").write_text("<h1 id=page>fake service</h1>")
srv = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", d],
                       stdout=subprocess.PIPE, text=True)
port = int(srv.stdout.readline().split(" port ")[1].split(" ")[0])
got = []
hello = {"type": "hello", "protocol": 1, "version": "test", "features": ["open"]}
c = create_comm(target_name="polynb", data=hello)
c.on_msg(lambda m: got.append(m["content"]["data"]))
def open_(key, title):
    c.send({"type": "open", "url": f"/proxy/{port}/", "title": title, "reuse_key": key, "kind": "service"})
open_("svc:1", "Service one")
`;

test('open: one tab per reuse_key, acknowledged, focus kept', async ({
  page
}) => {
  const name = await page.notebook.createNew('comm.ipynb');
  await setSource(page, 0, KERNEL);
  await page.notebook.runCell(0, { inplace: true });

  const tabs = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab');
  await expect(tabs.filter({ hasText: 'Service one' })).toHaveCount(1);
  await expect(
    page.frameLocator('.polynb-service-tab iframe').locator('#page')
  ).toHaveText('fake service');
  expect(await currentLabel(page)).toBe(name);

  // the same key again (e.g. after a state_request) reuses the tab; a new key joins its area
  const again = await appendCell(
    page,
    'open_("svc:1", "Service one"); open_("svc:2", "Service two")'
  );
  await page.notebook.runCell(again, { inplace: true });
  await expect(tabs.filter({ hasText: 'Service one' })).toHaveCount(1);
  await expect(tabs.filter({ hasText: 'Service two' })).toHaveCount(1);
  await expect(page.locator('.polynb-service-tab')).toHaveCount(2);
  expect(await currentLabel(page)).toBe(name);

  const show = await appendCell(
    page,
    'time.sleep(0.5); print(json.dumps(got))'
  );
  await page.notebook.runCell(show, { inplace: true });
  const acks = JSON.parse(
    (await page.notebook.getCellTextOutput(show))!.join('')
  );
  expect(acks[0]).toMatchObject({
    type: 'hello',
    protocol: 1,
    frontend: 'jupyterlab',
    base_url: '/'
  });
  expect(acks.filter((m: any) => m.type === 'state_request')).toHaveLength(1);
  expect(
    acks.filter((m: any) => m.type === 'opened').map((m: any) => m.reuse_key)
  ).toEqual(['svc:1', 'svc:1', 'svc:2']);

  await page.notebook.runCell(await appendCell(page, 'srv.terminate()'), {
    inplace: true
  });
});

/**
 * A new kernel (Kernel > Change Kernel) is a new connection: the target must be registered on it
 * (`manager.ts` connects `kernelChanged`); a restart keeps the connection and its registration.
 *
 * These run against the server's real kernels API (`kernels: null`; sessions are still tracked, and
 * deleted with their kernels after each test). Galata's kernels mock answers `GET /api/kernels` with
 * the kernels it has seen created, and it learns of a changed-to kernel only from the PATCH that
 * changes it. The server answers that PATCH after the old kernel has shut down, but its sessions list
 * shows the new kernel before: a sessions poll in that window makes JupyterLab connect to the new
 * kernel, the next kernels poll (from the mock) does not list it, and JupyterLab's KernelManager shuts
 * that connection down: the kernel ends "Disconnected". JupyterLab polls both every 10 s, so a full
 * run hit the window now and then; `changeKernel` below refreshes both inside it, as those polls do.
 * The mock also answers a restart with 201 where JupyterLab requires 200, so restarts failed too.
 */
test.describe('a new kernel connection', () => {
  test.use({ kernels: null });

  async function commTypesAfter(
    page: IJupyterLabPageFixture,
    change: () => Promise<void>
  ): Promise<string[]> {
    await setSource(page, 0, KERNEL);
    await page.notebook.runCell(0, { inplace: true });
    const show = await appendCell(
      page,
      'time.sleep(0.5); print(json.dumps(got))'
    );
    const stop = await appendCell(page, 'srv.terminate()');
    await page.notebook.runCell(stop, { inplace: true });
    await change();
    await page.notebook.runCell(0, { inplace: true });
    await page.notebook.runCell(show, { inplace: true });
    const after = JSON.parse(
      (await page.notebook.getCellTextOutput(show))!.join('')
    );
    await page.notebook.runCell(stop, { inplace: true });
    return after.map((m: any) => m.type);
  }

  test('the comm target is registered again on a new kernel', async ({
    page
  }) => {
    await page.notebook.createNew('comm-kernel.ipynb');
    const types = await commTypesAfter(page, () =>
      page.evaluate(async () => {
        const app = (window as any).jupyterapp;
        const context = app.shell.currentWidget.sessionContext;
        const before = context.session.kernel.id;
        const { sessions, kernels } = app.serviceManager;
        let changed = false;
        const change = context
          .changeKernel({ name: 'python3' })
          .finally(() => (changed = true));
        // JupyterLab's polls, while the server already shows the new kernel and the PATCH is pending
        while (!changed) {
          await sessions.refreshRunning();
          const model = [...sessions.running()].find(
            (m: any) => m.id === context.session.id
          );
          if (model && model.kernel?.id !== before) {
            await kernels.refreshRunning();
            break;
          }
          await new Promise(resolve => setTimeout(resolve, 20));
        }
        await change;
      })
    );
    expect(types).toEqual(['hello', 'state_request', 'opened']);
  });

  test('the registration survives a kernel restart', async ({ page }) => {
    await page.notebook.createNew('comm-restart.ipynb');
    const types = await commTypesAfter(page, () =>
      page.evaluate(async () => {
        const panel = (window as any).jupyterapp.shell.currentWidget;
        await panel.sessionContext.restartKernel();
      })
    );
    expect(types).toEqual(['hello', 'state_request', 'opened']);
  });
});
