// The live ranking: polls the rankings API every second and moves rows to their new
// places with a FLIP animation (measure First, apply the Last layout, Invert with a
// transform, Play it back to zero), so a climb is seen, not just a list that jumps.
//
// Why polling and not server-sent events: gunicorn's sync workers would spend a whole
// worker per open event stream, one per viewer, while a ranking read is a cached
// O(log N) Redis range that answers in about a millisecond. See docs/live-page.md.

import {
  drawSparkline,
  fillThumb,
  flash,
  fmtInt,
  fmtScore,
  getJSON,
  guardImage,
  movement,
  poller,
  readConfig,
  setLive,
} from "./common.js";

const cfg = readConfig("live-config");
const board = document.getElementById("board");
const empty = document.getElementById("board-empty");
const rowTemplate = document.getElementById("row-template");
const windowSelect = document.getElementById("window-select");
const categorySelect = document.getElementById("category-select");
const reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;

const state = {
  window: cfg.window,
  category: cfg.category,
  hasSnapshot: cfg.hasSnapshot,
  fresh: false,
  controller: null,
  sparks: new Map(Object.entries(cfg.sparks).map(([id, s]) => [Number(id), s])),
  sparkAt: Date.now(),
};

const selection = () => `${state.window}|${state.category || ""}`;

function query(extra) {
  const q = new URLSearchParams({ window: state.window, ...extra });
  if (state.category) q.set("category", state.category);
  return q;
}

function setField(li, name, text) {
  const el = li.querySelector(`[data-field="${name}"]`);
  if (el.textContent !== text) el.textContent = text;
  return el;
}

function fillRow(li, entry, isNew) {
  const video = entry.video;
  li.dataset.id = String(video.id);
  setField(li, "rank", String(entry.rank));
  const move = movement(entry.rank, entry.previous_rank, state.hasSnapshot);
  const moveEl = setField(li, "move", move.label);
  moveEl.className = `c-move move-${move.kind}`;
  moveEl.title = move.title;
  const title = setField(li, "title", video.title);
  title.href = cfg.videoUrl.replace("{id}", String(video.id));
  setField(li, "category", video.category);
  setField(li, "owner", video.owner);
  const scoreEl = li.querySelector('[data-field="score"]');
  const score = fmtScore(entry.score);
  if (scoreEl.textContent !== score) {
    scoreEl.textContent = score;
    if (!isNew) flash(scoreEl, "bump");
  }
  fillThumb(li.querySelector(".thumb"), video);
  const series = state.sparks.get(video.id);
  if (series) drawSparkline(li.querySelector(".spark"), series);
}

function render(page, fresh) {
  const before = new Map();
  const existing = new Map();
  for (const li of board.children) {
    before.set(li.dataset.id, li.getBoundingClientRect().top);
    existing.set(li.dataset.id, li);
  }
  const rows = page.results.map((entry) => {
    let li = fresh ? undefined : existing.get(String(entry.video.id));
    const isNew = li === undefined;
    if (isNew) li = rowTemplate.content.firstElementChild.cloneNode(true);
    fillRow(li, entry, isNew);
    return { li, isNew };
  });
  board.replaceChildren(...rows.map((r) => r.li));
  board.classList.remove("switching");
  empty.hidden = rows.length > 0;
  document.getElementById("total").textContent = fmtInt(page.total);
  if (reduceMotion) return;
  rows.forEach(({ li, isNew }, i) => {
    for (const running of li.getAnimations()) running.cancel();
    if (isNew) {
      li.animate([{ opacity: 0, transform: "translateY(8px)" }, { opacity: 1, transform: "none" }], {
        duration: 380,
        delay: fresh ? i * 18 : 0,
        easing: "ease-out",
        fill: "backwards",
      });
      return;
    }
    const dy = before.get(li.dataset.id) - li.getBoundingClientRect().top;
    if (Math.abs(dy) < 0.5) return;
    li.animate([{ transform: `translateY(${dy}px)` }, { transform: "none" }], {
      duration: 700,
      easing: "cubic-bezier(0.2, 0.8, 0.2, 1)",
    });
    flash(li, dy > 0 ? "rose" : "fell");
  });
}

async function refreshSparks(ids) {
  const due = Date.now() - state.sparkAt >= cfg.sparkRefreshMs;
  const wanted = due ? ids : ids.filter((id) => !state.sparks.has(id));
  if (wanted.length === 0) return;
  const q = new URLSearchParams({ ids: wanted.join(","), hours: String(cfg.sparkHours) });
  const data = await getJSON(`${cfg.api.sparklines}?${q}`);
  if (due) state.sparkAt = Date.now();
  for (const [id, series] of Object.entries(data.series)) state.sparks.set(Number(id), series);
  for (const li of board.children) {
    const series = state.sparks.get(Number(li.dataset.id));
    if (series) drawSparkline(li.querySelector(".spark"), series);
  }
}

async function pollRanking() {
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const asked = selection();
  const page = await getJSON(`${cfg.api.rankings}?${query({ limit: String(cfg.limit) })}`, controller.signal);
  if (asked !== selection()) return;
  const fresh = state.fresh;
  state.fresh = false;
  render(page, fresh);
  setLive("live", "Live", page.generated_at);
  // Sparklines are a nicety: their failure must not mark the ranking as offline.
  refreshSparks(page.results.map((e) => e.video.id)).catch(() => {});
}

function moverItem(item, badgeClass, badgeText) {
  const li = document.createElement("li");
  li.className = "mover";
  const badge = document.createElement("span");
  badge.className = `mover-badge ${badgeClass}`;
  badge.textContent = badgeText;
  const link = document.createElement("a");
  link.href = cfg.videoUrl.replace("{id}", String(item.video.id));
  link.textContent = item.video.title;
  const rank = document.createElement("span");
  rank.className = "mover-rank";
  rank.textContent = `#${item.rank}`;
  li.append(badge, link, rank);
  return li;
}

function noneItem(text) {
  const li = document.createElement("li");
  li.className = "mover mover-none";
  li.textContent = text;
  return li;
}

function renderMovers(data) {
  const since = document.getElementById("movers-since");
  if (data.since) {
    const d = new Date(data.since);
    const hhmm = `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
    since.textContent = `Since the snapshot at ${hhmm} UTC`;
  } else {
    since.textContent = "Movers appear after the first rank snapshot.";
  }
  const climbers = data.climbers.map((m) => moverItem(m, "move-up", `▲ ${m.change}`));
  const entries = data.new_entries.map((m) => moverItem(m, "move-new", "NEW"));
  document.getElementById("climbers").replaceChildren(...(climbers.length ? climbers : [noneItem("No climbers yet")]));
  document.getElementById("new-entries").replaceChildren(...(entries.length ? entries : [noneItem("No new entries yet")]));
}

async function pollMovers() {
  const asked = selection();
  const data = await getJSON(`${cfg.api.movers}?${query({ limit: String(cfg.moversLimit) })}`);
  if (asked !== selection()) return;
  state.hasSnapshot = data.since !== null;
  renderMovers(data);
}

const rankingPoll = poller(pollRanking, cfg.pollMs, () => setLive("offline", "Reconnecting…"));
const moversPoll = poller(pollMovers, cfg.moversPollMs);

function onSelect() {
  state.window = windowSelect.value;
  state.category = categorySelect.value || null;
  state.fresh = true;
  board.classList.add("switching");
  // Keep the choice in the address so a reload or a shared link shows the same list.
  window.history.replaceState(null, "", `?${query({})}`);
  rankingPoll.now();
  moversPoll.now();
}

windowSelect.addEventListener("change", onSelect);
categorySelect.addEventListener("change", onSelect);
for (const img of board.querySelectorAll(".thumb img")) guardImage(img);
rankingPoll.start(cfg.pollMs);
moversPoll.start(cfg.moversPollMs);
