// webpage.test.mjs - browser tests of the web page (SPEC 7, issue 14): headless
// Chromium from Debian's package, driven by playwright-core (installed by
// scripts/deps.sh test into tests/browser/node_modules; no browser download),
// against a real `wfo server` (the sanitizer build, $WFO_BIN) with real
// executions.
//
//   node tests/browser/webpage.test.mjs        (make browser-test)
//
// It opens the list, searches an id, opens the execution, sees its graph and
// the failed step's error, makes the step succeed, retries it from a chosen step
// and sees it complete without reloading the page. Screenshots go to
// build/browser/ (docs/operations/ keeps copies). Prints TAP; exit 1 on failure.

import {spawn} from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const WFO = process.env.WFO_BIN || path.join(root, "build/asan/wfo");
const SHOTS = process.env.SHOTS_DIR || path.join(root, "build/browser");
const CHROMIUM = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"].find((p) => fs.existsSync(p));
const CRASH = /AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|runtime error:|Segmentation fault/;

let n = 0, failed = 0;
function ok(cond, what) {
  n++;
  if (cond) console.log(`ok ${n} - ${what}`);
  else { failed++; console.log(`not ok ${n} - ${what}`); }
  return cond;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on("error", reject);
  });
}

async function call(base, method, p, body, headers = {}) {
  const r = await fetch(base + p, {method, headers: {"Content-Type": "application/json", ...headers},
                                   body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body))});
  const j = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

// A server with tokens: the page comes with a 401 (SPEC 4: every request
// but /healthz, /readyz and /metrics is checked), shows, and asks for the
// token; once given, its own calls send it and the list fills.
async function withTokens(browser, dir, env) {
  const token = "browser-reader-token-0123";
  const cfg = path.join(dir, "auth.yaml");
  fs.writeFileSync(cfg, "auth:\n  tokens:\n" +
    `    - {token: ${token}, namespace: default, role: reader, name: browser}\n` +
    "    - {token: browser-admin-token-0123, namespace: default, role: admin, name: setup}\n");
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const errLog = fs.openSync(path.join(dir, "auth.err"), "a");
  const srv = spawn(WFO, ["server", "--config", cfg, "--listen", `127.0.0.1:${port}`,
                          "--db", `sqlite:${path.join(dir, "auth.db")}`],
                    {stdio: ["ignore", "ignore", errLog], env, cwd: dir});
  try {
    for (let i = 0; ; i++) {
      try { await call(base, "GET", "/healthz"); break; } catch (e) {
        if (i > 300 || srv.exitCode !== null) throw new Error("server with tokens did not start: " + fs.readFileSync(path.join(dir, "auth.err"), "utf8"));
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const admin = {Authorization: "Bearer browser-admin-token-0123"};
    await call(base, "PUT", "/v1/workflows/tok", {name: "tok", steps: [{name: "s", type: "set", vars: {a: 1}}]}, admin);
    await call(base, "POST", "/v1/executions?wait=10s", {workflow: "tok", id: "tok-run-1"}, admin);
    const page = await browser.newPage({viewport: {width: 1400, height: 900}});
    const resp = await page.goto(base + "/");
    ok(resp.status() === 401 && (await page.locator("#token").count()) === 1,
       `with tokens the page comes with a 401 (${resp.status()}) and shows its token field`);
    await page.waitForFunction(() => document.querySelector("#list-msg").textContent.includes("token"), null, {timeout: 10000});
    ok((await page.locator("#list").textContent()) === "", "without a token its calls are refused: no execution listed");
    await page.fill("#token", token);
    await page.locator("#token").dispatchEvent("change");
    await page.waitForFunction(() => document.querySelector("#list").textContent.includes("tok-run-1"), null, {timeout: 10000});
    ok(true, "with the token typed, its calls send it and the list shows the execution");
    await page.evaluate(() => { location.hash = "#tok-run-1"; });
    await page.waitForFunction(() => (document.querySelector("#exec-id") || {}).textContent === "tok-run-1",
                               null, {timeout: 10000});
    // the token stops working while the page is open (revoked): the next refresh empties it
    await page.evaluate(() => localStorage.setItem("wfo.token", "revoked-token-0123456789"));
    await page.waitForFunction(() => document.querySelector("#list").textContent === "" &&
                               !document.querySelector("#exec-id"), null, {timeout: 10000});
    ok(true, "a token refused while the page is open empties the list and the execution shown");
    await page.close();
  } finally {
    srv.kill("SIGTERM");
    const code = await new Promise((r) => (srv.exitCode !== null ? r(srv.exitCode) : srv.on("exit", (c) => r(c))));
    const err = fs.readFileSync(path.join(dir, "auth.err"), "utf8");
    ok(code === 0 && !CRASH.test(err), `the server with tokens stopped cleanly (exit ${code})`);
  }
}

async function main() {
  const {chromium} = await import("playwright-core");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wfo-browser-"));
  const flag = path.join(dir, "card-ok");
  fs.mkdirSync(SHOTS, {recursive: true});
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const errLog = fs.openSync(path.join(dir, "server.err"), "a");
  const env = {...process.env, WFO_EXEC_ENABLED: "true", WFO_LOG_LEVEL: "info"};
  for (const k of Object.keys(env)) if (k.startsWith("WFO_") && !["WFO_EXEC_ENABLED", "WFO_LOG_LEVEL", "WFO_BIN"].includes(k)) delete env[k];
  const srv = spawn(WFO, ["server", "--listen", `127.0.0.1:${port}`, "--db", `sqlite:${path.join(dir, "wfo.db")}`],
                    {stdio: ["ignore", "ignore", errLog], env, cwd: dir});
  let browser = null;
  try {
    for (let i = 0; ; i++) {
      try { await call(base, "GET", "/healthz"); break; } catch (e) {
        if (i > 300 || srv.exitCode !== null) throw new Error("server did not start: " + fs.readFileSync(path.join(dir, "server.err"), "utf8"));
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    // ---- real executions ----
    await call(base, "PUT", "/v1/workflows/checkout", {
      name: "checkout", description: "reserve, charge the card (a command), ship; undo the reservation when the charge fails",
      steps: [
        {name: "reserve", type: "set", vars: {held: true}, compensate: {type: "set", vars: {held: false}}},
        {name: "charge", type: "exec", retry: {max_attempts: 2, initial_interval: "200ms"},
         command: ["/bin/sh", "-c", `test -f '${flag}' && echo '{"charged": 42}' || { echo 'card declined: insufficient funds' >&2; exit 3; }`]},
        {name: "ship", type: "set", vars: {shipped: true}},
      ]});
    await call(base, "PUT", "/v1/workflows/fulfil", {
      name: "fulfil",
      steps: [
        {name: "check", type: "switch", cases: [{when: "${ .input.express }", next: "express"}], default: "pack"},
        {name: "express", type: "set", vars: {speed: "express"}, next: "pack"},
        {name: "pack", type: "parallel", branches: [
          {name: "items", steps: [{name: "each", type: "foreach", items: "${ .input.items }",
                                   steps: [{name: "pick", type: "set", vars: {picked: "${ .item }"}}]}]},
          {name: "label", steps: [{name: "print", type: "exec", command: ["/bin/echo", "{}"],
                                   catch: [{errors: ["ExecFailed"], next: "manual"}]},
                                  {name: "manual", type: "set", vars: {manual: true}}]}]},
        {name: "notify", type: "set", vars: {done: true}, compensate: {type: "set", vars: {done: false}}},
      ]});
    await call(base, "PUT", "/v1/workflows/ship", {
      name: "ship", steps: [{name: "prepare", type: "set", vars: {a: 1}}, {name: "book-courier", type: "task", queue: "couriers"}]});
    for (let i = 0; i < 3; i++)
      await call(base, "POST", "/v1/executions?wait=10s", {workflow: "fulfil", input: {express: i === 1, items: [1, 2, 3].slice(0, i + 1)}});
    const waiting = await call(base, "POST", "/v1/executions", {workflow: "ship", id: "ship-1001"});
    const failedDoc = await call(base, "POST", "/v1/executions?wait=20s", {workflow: "checkout", id: "checkout-7", input: {order: 7, amount: 42}});
    ok(failedDoc.status === "failed" && failedDoc.compensation && failedDoc.compensation.status === "completed",
       "the checkout execution failed at charge and was compensated");

    // ---- the browser ----
    browser = await chromium.launch({executablePath: CHROMIUM, headless: true,
                                     args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]});
    const page = await browser.newPage({viewport: {width: 1400, height: 900}});
    const jsErrors = [];
    page.on("pageerror", (e) => jsErrors.push(String(e)));
    await page.goto(base + "/");
    await page.waitForSelector("#list tr[data-id='checkout-7']", {timeout: 30000});
    const rows = await page.locator("#list tr[data-id]").count();
    ok(rows === 5, `the list shows the 5 executions (${rows})`);
    const st = await page.locator("#list tr[data-id='checkout-7'] .st").textContent();
    ok(st === "failed, compensated", `failed and compensated is told apart in the list (${st})`);
    ok((await page.locator("#list tr[data-id='ship-1001'] td").first().textContent()) === "ship-1001", "the id column");
    await page.screenshot({path: path.join(SHOTS, "list.png")});

    // filter by workflow as you type
    await page.fill("#f-workflow", "fulfil");
    await page.waitForFunction(() => [...document.querySelectorAll("#list tr[data-id]")].every((r) => r.textContent.includes("fulfil")), null, {timeout: 30000});
    ok((await page.locator("#list tr[data-id]").count()) === 3, "the workflow filter applies as you type");
    await page.fill("#f-workflow", "");

    // search by id, open it
    await page.fill("#f-id", "checkout-7");
    await page.waitForFunction(() => document.querySelectorAll("#list tr[data-id]").length === 1, null, {timeout: 30000});
    ok((await page.locator("#list tr[data-id]").getAttribute("data-id")) === "checkout-7", "search by id finds it");
    await page.click("#list tr[data-id='checkout-7']");
    await page.waitForSelector("#graph-svg", {timeout: 30000});
    ok(await page.locator("#list tr.sel[data-id='checkout-7']").count() === 1, "the opened row is highlighted");
    ok(await page.locator("#graph-svg .node[data-step='charge'][data-status='failed']").count() === 1, "the graph colours the failed step");
    ok(await page.locator("#graph-svg .node[data-step='reserve'][data-status='compensated']").count() === 1, "and the compensated one");
    ok((await page.locator("#exec-error").textContent()).includes("card declined"), "the execution's error is shown");
    await page.click("#graph-svg .node[data-step='charge']");
    await page.waitForSelector("#stepinfo .step-error");
    ok((await page.locator("#stepinfo .step-error").textContent()).includes("card declined: insufficient funds"),
       "clicking the failed step shows its error");
    ok((await page.locator("#timeline-svg").textContent()).includes("2 attempts"), "the timeline shows the retry");
    await page.screenshot({path: path.join(SHOTS, "failed.png")});

    // make the step succeed, then retry from a chosen step (reserve, which was
    // undone): it completes without a reload
    fs.writeFileSync(flag, "");
    await page.selectOption("#retry-from", "reserve");
    await page.click("#actions button[data-op='retry']");
    await page.waitForFunction(() => {
      const h = document.querySelector("#detail h2 .st");
      return h && h.textContent === "completed";
    }, null, {timeout: 20000});
    ok(true, "after the retry the page shows the execution completed, without a reload");
    ok(await page.locator("#graph-svg .node[data-step='charge'][data-status='completed']").count() === 1, "the graph follows");
    await page.waitForFunction(() => {
      const r = document.querySelector("#list tr[data-id='checkout-7'] .st");
      return r && r.textContent === "completed";
    }, null, {timeout: 30000});
    ok(true, "the list follows too (polling)");
    const done = await call(base, "GET", "/v1/executions/checkout-7");
    ok(done.status === "completed" && done.steps.find((s) => s.name === "charge").output.json.charged === 42,
       "the server agrees: charge ran again and completed");
    const hist = await call(base, "GET", "/v1/executions/checkout-7/history");
    ok(hist.some((h) => h.type === "execution.retried" && h.data && h.data.step === "reserve") &&
       done.steps.find((s) => s.name === "reserve").status === "completed",
       "it resumed from the chosen step, which ran again");

    // a richer graph and why a running execution waits
    await page.fill("#f-id", "");
    await page.click(`#list tr[data-id]:has-text("fulfil")`);
    await page.waitForSelector("#graph-svg .node[data-step='pack/label/print']", {timeout: 30000});
    const labels = await page.locator("#graph-svg .edge-label").allTextContents();
    ok(labels.some((t) => t.startsWith("when")) && labels.some((t) => t.startsWith("catch ExecFailed")),
       `switch and catch edges carry their conditions (${labels.join("; ")})`);
    ok((await page.locator("#graph-svg").textContent()).includes("iteration"), "foreach shows its iteration count");
    await page.screenshot({path: path.join(SHOTS, "graph.png")});

    await page.evaluate(() => { location.hash = "#ship-1001"; });
    await page.waitForFunction(() => (document.querySelector("#why") || {}).textContent?.includes("couriers"), null, {timeout: 30000});
    ok((await page.locator("#why").textContent()).includes("no worker polls this queue"), "why it waits: the queue and that no worker polls it");
    await page.screenshot({path: path.join(SHOTS, "waiting.png")});
    ok(waiting.status === "running", "the waiting execution is still running");

    // the compensation that ran: in the timeline and coloured in the graph
    await page.evaluate(() => { location.hash = "#checkout-7"; });
    await page.waitForFunction(() => (document.querySelector("#timeline-svg") || {}).textContent?.includes("reserve:compensate"), null, {timeout: 30000});
    const undoFill = await page.locator('#graph-svg g.node[data-step="reserve:compensate"] rect').getAttribute("fill");
    ok(undoFill && undoFill !== "#fff", `the undo node is coloured by its compensation's status (${undoFill})`);
    ok((await page.locator("#timeline-svg").textContent()).includes("reserve:compensate"), "the timeline draws the compensation");

    // a long id wraps: nothing is wider than the window, its row can be clicked
    const longId = "L".repeat(200);
    await call(base, "POST", "/v1/executions?wait=10s", {workflow: "fulfil", id: longId, input: {express: false, items: [1]}});
    await page.waitForFunction((id) => document.querySelector("#list").textContent.includes(id), longId, {timeout: 30000});
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    ok(wide <= 1, `a 200-character id does not widen the page (${wide} px over)`);
    await page.locator("#list tr", {hasText: longId}).click({timeout: 5000});
    await page.waitForFunction((id) => location.hash.slice(1) === id, longId, {timeout: 5000});
    ok(true, "its row can be clicked");

    // a malformed fragment neither throws nor stops the page updating
    const errsBefore = jsErrors.length;
    await page.goto(base + "/#bad%zz");
    const late = await call(base, "POST", "/v1/executions?wait=10s", {workflow: "fulfil", input: {express: true, items: [1]}});
    await page.waitForFunction((id) => document.querySelector("#list").textContent.includes(id), late.id, {timeout: 30000});
    ok(jsErrors.length === errsBefore, "a malformed #fragment: no script error, and the list still updates by itself");
    ok(jsErrors.length === 0, "no script error on the page " + jsErrors.join("; "));
    await withTokens(browser, dir, env);
  } finally {
    if (browser) await browser.close();
    srv.kill("SIGTERM");
    const code = await new Promise((r) => (srv.exitCode !== null ? r(srv.exitCode) : srv.on("exit", (c) => r(c))));
    const err = fs.readFileSync(path.join(dir, "server.err"), "utf8");
    ok(code === 0 && !CRASH.test(err), `the server stopped cleanly (exit ${code})` + (CRASH.test(err) ? "\n" + err.slice(-3000) : ""));
    fs.rmSync(dir, {recursive: true, force: true});
  }
}

const t0 = Date.now();
main().catch((e) => { failed++; console.log(`not ok ${++n} - ${e.stack || e}`); }).finally(() => {
  console.log(`1..${n}`);
  console.log(`browser: ${n - failed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${SHOTS})`);
  process.exit(failed ? 1 : 0);
});
