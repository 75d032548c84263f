// The Playwright peer of the load run (cmd/peekshot-load, docs/performance.md):
// a screenshot server as a small service on playwright-core would be written,
// driving the browser binary the run gives it (the same one PeekShot uses),
// with a new browser context per request, closed after the answer.
//
//   CHROME=/usr/lib/chromium/chromium-headless-shell node server.js
//
// It prints one JSON line, {"port": N, "version": "..."}, when it listens on
// 127.0.0.1:N, and answers POST /render with a JSON body
// {"html": "..."} or {"url": "..."}, plus "width" and "height", with a PNG.
"use strict";

const http = require("http");
const { chromium } = require("playwright-core");

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROME,
    headless: true,
    // Nothing leaves the machine: the load run is offline.
    args: ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });

  async function render(job) {
    const context = await browser.newContext({
      viewport: { width: job.width || 1280, height: job.height || 720 },
      deviceScaleFactor: 1,
    });
    try {
      const page = await context.newPage();
      if (job.url) {
        await page.goto(job.url, { waitUntil: "load" });
      } else {
        await page.setContent(job.html, { waitUntil: "load" });
      }
      return await page.screenshot({ type: "png" });
    } finally {
      await context.close();
    }
  }

  const server = http.createServer((req, res) => {
    if (req.method !== "POST" || req.url !== "/render") {
      res.writeHead(404).end();
      return;
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      try {
        const png = await render(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        res.writeHead(200, { "Content-Type": "image/png", "Content-Length": png.length }).end(png);
      } catch (err) {
        res.writeHead(500, { "Content-Type": "text/plain" }).end(String(err && err.stack || err));
      }
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ port: server.address().port, version: browser.version() }) + "\n");
  });

  const stop = async () => {
    server.close();
    await browser.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + "\n");
  process.exit(1);
});
