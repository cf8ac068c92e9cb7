// A video's page stays current like the live ranking: standings and breakdown every
// two seconds from the rankings API, the hourly chart at the pace its cache refreshes.

import { drawActivityChart, drawRankChart, flash, fmtInt, fmtScore, getJSON, poller, readConfig, setLive } from "./common.js";

const cfg = readConfig("video-config");

function setCell(el, text) {
  if (!el || el.textContent === text) return;
  el.textContent = text;
  flash(el, "bump");
}

function renderStandings(standings) {
  for (const [window, scopes] of Object.entries(standings)) {
    const row = document.querySelector(`#standings tr[data-window="${window}"]`);
    if (!row) continue;
    for (const [scope, s] of Object.entries(scopes)) {
      const cell = (field) => row.querySelector(`[data-scope="${scope}"][data-field="${field}"]`);
      const rankCell = cell("rank");
      setCell(rankCell.querySelector("strong"), s.rank === null ? "–" : `#${fmtInt(s.rank)}`);
      setCell(rankCell.querySelector(".of"), `of ${fmtInt(s.total)}`);
      setCell(cell("score"), fmtScore(s.score));
      setCell(cell("percentile"), s.percentile === null ? "–" : String(Number(s.percentile)));
    }
  }
}

function renderBreakdown(breakdown) {
  for (const [window, rows] of Object.entries(breakdown)) {
    const table = document.querySelector(`table.breakdown[data-window="${window}"]`);
    if (!table) continue;
    const biggest = Math.max(...rows.map((r) => Math.abs(r.score)), 0) || 1;
    for (const r of rows) {
      const tr = table.querySelector(`tbody tr[data-type="${CSS.escape(r.type)}"]`);
      if (!tr) continue;
      setCell(tr.querySelector('[data-field="weight"]'), `× ${fmtScore(r.weight)}`);
      setCell(tr.querySelector('[data-field="events"]'), fmtInt(r.events));
      setCell(tr.querySelector('[data-field="units"]'), fmtScore(r.units));
      setCell(tr.querySelector('[data-field="score"]'), fmtScore(r.score));
      const share = tr.querySelector('[data-field="share"]');
      share.style.width = `${Math.round((1000 * Math.abs(r.score)) / biggest) / 10}%`;
      share.classList.toggle("share-negative", r.score < 0);
    }
    const foot = table.querySelector("tfoot");
    setCell(foot.querySelector('[data-field="events"]'), fmtInt(rows.reduce((a, r) => a + r.events, 0)));
    setCell(foot.querySelector('[data-field="score"]'), fmtScore(rows.reduce((a, r) => a + r.score, 0)));
  }
}

async function pollStanding() {
  const data = await getJSON(cfg.api.standing);
  renderStandings(data.standings);
  renderBreakdown(data.breakdown);
  setLive("live", "Live");
}

async function pollActivity() {
  const data = await getJSON(`${cfg.api.activity}?hours=${cfg.chartHours}`);
  const total = drawActivityChart(document.getElementById("activity-chart"), data.scores, data.start);
  setCell(document.getElementById("activity-total"), fmtScore(total));
}

async function pollRankHistory() {
  const [overall, inCategory] = await Promise.all(cfg.api.rankHistory.map((url) => getJSON(url)));
  const series = [overall, inCategory].map((h) => h.points.map((p) => [Date.parse(p.taken_at), p.rank]));
  drawRankChart(document.getElementById("rank-chart"), series, Date.parse(overall.since), Date.now());
  document.getElementById("rank-empty").hidden = overall.points.length + inCategory.points.length > 0;
}

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tab")) other.setAttribute("aria-selected", String(other === tab));
    for (const table of document.querySelectorAll("table.breakdown")) table.hidden = table.dataset.window !== tab.dataset.window;
  });
}

poller(pollStanding, cfg.pollMs, () => setLive("offline", "Reconnecting…")).start();
poller(pollActivity, cfg.chartRefreshMs).start();
poller(pollRankHistory, cfg.rankRefreshMs).start();
