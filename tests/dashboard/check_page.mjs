// The live dashboard page in a real browser.
//
//   node check_page.mjs DEMO SCREENSHOT [--chromium PATH] [--seconds N]
//
// Starts the demo (faststream-demo, in-process broker, dashboard on) on a free
// loopback port, opens http://HOST:PORT/ in Debian's headless Chromium
// (driven by playwright-core), and waits until every panel and tile has drawn
// data (their data-points attribute), at most N seconds (default 45). Then it
// checks the filters (choosing a handler redraws with that handler only),
// saves a screenshot to SCREENSHOT, and fails on any page error. Exit 0 on
// success; a failure says which panels stayed empty.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const [demoPath, screenshot] = args;
const chromiumPath = opt("--chromium", "/usr/bin/chromium");
const seconds = Number(opt("--seconds", "45"));
if (!demoPath || !screenshot) {
  console.error("usage: node check_page.mjs DEMO SCREENSHOT [--chromium PATH] [--seconds N]");
  process.exit(2);
}

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exitCode = 1;
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let demoLog = "";
const demo = spawn(demoPath, ["--listen", `127.0.0.1:${port}`, "--duration", String(seconds + 30)], {
  stdio: ["ignore", "pipe", "pipe"],
});
demo.stdout.on("data", (d) => (demoLog += d));
demo.stderr.on("data", (d) => (demoLog += d));

let browser;
try {
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      const r = await fetch(base + "/metrics");
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline || demo.exitCode !== null) throw new Error("the demo did not serve /metrics\n" + demoLog);
    await new Promise((r) => setTimeout(r, 100));
  }
  const page0 = await fetch(base + "/");
  if (page0.status !== 200 || !(page0.headers.get("content-type") || "").startsWith("text/html"))
    throw new Error(`GET / answered ${page0.status} ${page0.headers.get("content-type")}`);

  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1600 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  // The page must need nothing but this server.
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });
  await page.goto(base + "/");

  const state = () =>
    page.evaluate(() => {
      const out = {};
      for (const e of document.querySelectorAll(".panel, .tile")) {
        if (e.getAttribute("data-optional") === "absent") continue;
        const title = (e.querySelector("h2") || e.querySelector(".t")).textContent;
        out[title] = Number(e.getAttribute("data-points") || 0);
      }
      return out;
    });
  let s = {};
  const until = Date.now() + seconds * 1000;
  for (;;) {
    s = await state();
    const empty = Object.keys(s).filter((k) => !(s[k] > 0));
    if (Object.keys(s).length >= 19 && empty.length === 0) break;
    if (Date.now() > until) {
      fail(`panels without data after ${seconds} s: ${empty.join(", ") || "(too few panels: " + Object.keys(s).length + ")"}`);
      break;
    }
    await page.waitForTimeout(500);
  }
  console.log(`ok   ${Object.keys(s).length} panels and tiles drew data`);
  for (const [k, v] of Object.entries(s)) console.log(`     ${String(v).padStart(6)} points  ${k}`);

  // Filtering by one handler redraws the handler panels with it alone.
  const handlers = await page.$$eval("#f-handler option", (os) => os.map((o) => o.value).filter(Boolean));
  if (handlers.length < 2) fail(`the handler filter lists ${handlers.length} handlers`);
  else {
    await page.selectOption("#f-handler", handlers[0]);
    await page.waitForTimeout(300);
    const legend = await page.$$eval("#panel-in-process .u-legend .u-series .u-label", (ls) =>
      ls.map((l) => l.textContent).filter((t) => t && t !== "Time" && t !== "Value"));
    if (legend.some((l) => l !== handlers[0])) fail(`filtered to ${handlers[0]}, the in-process panel shows ${legend}`);
    else console.log(`ok   the handler filter (${handlers.length} handlers) narrows the panels`);
    await page.selectOption("#f-handler", "");
    await page.waitForTimeout(1200);
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log("ok   screenshot: " + screenshot);
  if (errors.length) fail("page errors:\n  " + errors.join("\n  "));
  if (foreign.length) fail("the page asked for other hosts: " + foreign.join(", "));
} catch (e) {
  fail(String(e && e.stack || e));
} finally {
  if (browser) await browser.close();
  demo.kill("SIGTERM");
}
if (process.exitCode) console.error("--- demo output ---\n" + demoLog.slice(-3000));
