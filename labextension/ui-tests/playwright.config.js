/**
 * Galata on Debian's Chromium (no browser download): the system binary, no video (it would need
 * Playwright's own ffmpeg build), one worker (2-core CI; the tests share one Jupyter server).
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = process.env.POLYNB_UI_PORT || '18888';

module.exports = {
  ...baseConfig,
  reporter: [['list'], ['html', { open: 'never' }]],
  outputDir: 'test-results',
  timeout: 180 * 1000,
  expect: { timeout: 30 * 1000 },
  workers: 1,
  // The kernel-change flake (a changed-to kernel ending "Disconnected") was Galata's kernels mock racing a
  // kernel change; those tests now use the real kernels API (comm.spec.ts). One retry stays for a machine
  // too loaded to start JupyterLab within Galata's wait (`jupyterapp.started`, seen at load 18 on 2 cores):
  // a failure that repeats on the retry is a real one.
  retries: 1,
  use: {
    ...baseConfig.use,
    baseURL: `http://127.0.0.1:${port}`,
    viewport: { width: 1400, height: 850 },
    video: 'off',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking'
      ]
    }
  },
  webServer: {
    command: 'jlpm start',
    url: `http://127.0.0.1:${port}/lab`,
    timeout: 120 * 1000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe'
  }
};
