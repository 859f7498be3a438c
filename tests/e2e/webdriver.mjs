// A minimal WebDriver client (chromedriver, geckodriver, WebKitWebDriver) and a static file
// server, so the end-to-end tests need no npm package and never download a browser.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png', '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml', '.webmanifest': 'application/manifest+json',
};

/**
 * Serves `root` on 127.0.0.1 at `port` (default: a free one); `mounts` maps URL prefixes to
 * other folders, `headers` are added to every answer. `requests` lists the paths asked for.
 */
export async function serve(root, { port = 0, mounts = {}, headers = {} } = {}) {
  const requests = [];
  const server = createServer(async (req, res) => {
    requests.push(req.url);
    const urlPath = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const [prefix, base] = Object.entries(mounts).find(([p]) => urlPath.startsWith(p)) || ['/', root];
    const path = normalize(urlPath.slice(prefix.length - 1)).replace(/^(\.\.[/\\])+/, '');
    let file = join(base, path);
    try {
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const { size } = await stat(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream', 'content-length': size, ...headers });
      // Streamed: model files are hundreds of MB.
      createReadStream(file).pipe(res);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    port: server.address().port,
    requests,
    close: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Folders made by `tempDir`, removed when the test process exits however it ends. */
const tempDirs = new Set();
const removeDir = (dir) => {
  tempDirs.delete(dir);
  try { rmSync(dir, { recursive: true, force: true }); } catch { /* still in use: best effort */ }
};

/**
 * A fresh folder under the system's temporary folder, removed at exit. Tests copy the site and
 * a browser keeps its profile (hundreds of MB of stored models and app shell) in such folders;
 * left behind, a day of test runs fills the disk and the browser stops storing anything.
 */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), `fieldclip-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/** No WebDriver request may take longer (a page's script has SCRIPT_TIMEOUT_MS of it). */
const REQUEST_TIMEOUT_MS = 90_000;
const SCRIPT_TIMEOUT_MS = 60_000;

/** Drivers still running, killed (with their browser) if the test process ends early. */
const running = new Set();
function killGroup(driver) {
  running.delete(driver);
  // A driver leads its own process group (detached), its browser and helpers in it.
  try { process.kill(-driver.pid, 'SIGKILL'); } catch { /* already gone */ }
}
process.on('exit', () => {
  for (const d of [...running]) killGroup(d);
  for (const dir of [...tempDirs]) removeDir(dir);
});
// node's test runner ends a file's process with a signal when it times out: clean up then too.
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(128 + (signal === 'SIGINT' ? 2 : 15)));

/** The browser engines the tests drive, each a real browser from Debian's packages. */
export const ENGINES = ['chromium', 'firefox', 'webkit'];

/**
 * The engines a test file runs in: FIELDCLIP_ENGINES (comma-separated) or all three. Tests that
 * need an engine's own protocol (Chromium's DevTools) stay Chromium-only.
 */
export function enginesToTest() {
  const asked = (process.env.FIELDCLIP_ENGINES || ENGINES.join(',')).split(',').map((e) => e.trim()).filter(Boolean);
  for (const e of asked) if (!ENGINES.includes(e)) throw new Error(`FIELDCLIP_ENGINES: unknown engine ${e} (known: ${ENGINES.join(', ')})`);
  return asked;
}

const MINIBROWSER = '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';

/**
 * The WebDriver server and the W3C capabilities of a session for `engine`:
 * - chromium: Debian's chromedriver + headless Chromium with WebGPU (SwiftShader) enabled;
 * - firefox: geckodriver (crates.io) + headless Firefox ESR;
 * - webkit: WebKitGTK's WebKitWebDriver + MiniBrowser, which has no headless mode, in a virtual
 *   X display (xvfb-run).
 * Each driver leads its own process group, the browser and its helpers (and Xvfb) in it.
 */
function driverFor(engine, port, profile, width, height) {
  if (engine === 'chromium') {
    return {
      command: ['chromedriver', `--port=${port}`],
      capabilities: {
        browserName: 'chrome',
        'goog:chromeOptions': {
          binary: '/usr/bin/chromium',
          args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
            `--window-size=${width},${height}`, `--user-data-dir=${profile}`],
        },
      },
    };
  }
  if (engine === 'firefox') {
    return {
      command: ['geckodriver', `--port=${port}`, '--host=127.0.0.1'],
      capabilities: {
        browserName: 'firefox',
        'moz:firefoxOptions': {
          binary: '/usr/bin/firefox-esr',
          args: ['-headless', '-profile', profile, `--width=${width}`, `--height=${height}`],
          // Nothing reaches out to the network on its own (this machine has none to give).
          prefs: { 'app.update.enabled': false, 'browser.safebrowsing.malware.enabled': false, 'network.captive-portal-service.enabled': false },
        },
      },
    };
  }
  if (engine === 'webkit') {
    return {
      command: ['xvfb-run', '-a', '-s', `-screen 0 ${width + 200}x${height + 200}x24`, 'WebKitWebDriver', `--port=${port}`],
      // Safari gives a cross-origin isolated page SharedArrayBuffer; WebKitGTK leaves it behind
      // this JavaScriptCore option (its pages are isolated, but shared memory cannot be posted
      // to a worker), so the tests turn it on to run what Safari runs.
      env: { JSC_useSharedArrayBuffer: '1' },
      capabilities: {
        browserName: 'MiniBrowser',
        'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] },
      },
    };
  }
  throw new Error(`unknown browser engine ${engine}`);
}

/**
 * Starts a WebDriver session in `engine` (default Chromium, with WebGPU enabled). Every request
 * has a timeout; `close()` kills the driver's process group whatever state it is in.
 */
export async function browser({ width = 768, height = 1024, engine = 'chromium' } = {}) {
  const port = 9500 + Math.floor(Math.random() * 400);
  // Our own profile folder: a driver's own (/tmp/org.chromium.Chromium.scoped_dir.*,
  // /tmp/rust_mozprofile*) is left behind whenever the driver is killed rather than asked to quit.
  const profile = tempDir('profile');
  const { command, capabilities, env = {} } = driverFor(engine, port, profile, width, height);
  // TMPDIR: xvfb-run's display authority file goes into the profile folder, removed with it.
  const driver = spawn(command[0], command.slice(1), { stdio: 'ignore', detached: true, env: { ...process.env, ...env, TMPDIR: profile } });
  running.add(driver);
  const base = `http://127.0.0.1:${port}`;
  let up = false;
  // xvfb-run waits for its display before starting the driver: up to 30 s in all.
  for (const deadline = Date.now() + 30_000; !up && Date.now() < deadline;) {
    try { up = (await fetch(`${base}/status`, { signal: AbortSignal.timeout(2000) })).ok; } catch { await sleep(100); }
  }
  if (!up) {
    killGroup(driver);
    removeDir(profile);
    throw new Error(`the ${engine} WebDriver server (${command[0]}) did not start within 30 s`);
  }
  const request = async (method, path, body, timeoutMs = REQUEST_TIMEOUT_MS) => {
    let r;
    try {
      r = await fetch(`${base}${path}`, {
        method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new Error(`WebDriver ${method} ${path}: ${e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : e.message}`);
    }
    const json = await r.json();
    // A W3C error answers with an HTTP error status; a script may return an object with an `error` key.
    if (!r.ok && json.value && json.value.error) throw new Error(`${json.value.error}: ${json.value.message}`);
    return json.value;
  };
  let session;
  try {
    session = await request('POST', '/session', {
      capabilities: { alwaysMatch: { ...capabilities, timeouts: { script: SCRIPT_TIMEOUT_MS, pageLoad: SCRIPT_TIMEOUT_MS, implicit: 0 } } },
    });
    // MiniBrowser opens at its own size.
    if (engine === 'webkit') await request('POST', `/session/${session.sessionId}/window/rect`, { width, height });
  } catch (e) {
    killGroup(driver);
    removeDir(profile);
    throw e;
  }
  const s = `/session/${session.sessionId}`;
  const find = async (css) => Object.values(await request('POST', `${s}/element`, { using: 'css selector', value: css }))[0];
  return {
    engine,
    goto: (url) => request('POST', `${s}/url`, { url }),
    /** Opens the app and waits until its module has wired every control. */
    async open(url) {
      await this.goto(url);
      await this.waitFor(`return document.documentElement.dataset.ready === 'true';`, 'the page to be ready');
    },
    /** Runs an async script in the page; a script that throws fails the test. */
    async run(script, ...args) {
      const value = await request('POST', `${s}/execute/async`, {
        script: `const done = arguments[arguments.length - 1]; Promise.resolve((async () => { ${script} })(...arguments)).then(done, (e) => done({ __error: String(e) }));`,
        args,
      });
      if (value && value.__error) throw new Error(`in the page: ${value.__error}`);
      return value;
    },
    /** Sets the files of an <input type=file>. */
    upload: async (css, paths) => request('POST', `${s}/element/${await find(css)}/value`, { text: paths.join('\n') }),
    /** A Chrome DevTools Protocol command (chromedriver's vendor endpoint; Chromium only). */
    cdp: (cmd, params = {}) => {
      if (engine !== 'chromium') throw new Error(`DevTools commands exist only in Chromium, not in ${engine}`);
      return request('POST', `${s}/goog/cdp/execute`, { cmd, params });
    },
    screenshot: async () => Buffer.from(await request('GET', `${s}/screenshot`), 'base64'),
    /** A PNG of the first element matching `css` (scrolled into view). */
    elementScreenshot: async (css) => Buffer.from(await request('GET', `${s}/element/${await find(css)}/screenshot`), 'base64'),
    setSize: (w, h) => request('POST', `${s}/window/rect`, { width: w, height: h }),
    async waitFor(script, what, timeoutMs = 120000) {
      const start = Date.now();
      for (;;) {
        let value;
        try {
          value = await this.run(script);
        } catch (e) {
          // A page busy with long synchronous work (a benchmark) cannot answer for a while.
          if (!/script timeout/.test(e.message)) throw e;
        }
        if (value) return value;
        if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
        await sleep(200);
      }
    },
    /** Ends the session and kills the driver and the browser whatever state they are in. */
    close: async () => {
      await request('DELETE', s, undefined, 10_000).catch(() => {});
      killGroup(driver);
      // Chromium's processes die with the group; give the kernel a moment to close their files.
      await sleep(100);
      removeDir(profile);
    },
  };
}
