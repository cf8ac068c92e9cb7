// Shared by the live pages. Mirrors web/display.py: rows drawn here must look
// exactly like the rows the server rendered, or they would change on first update.

const SVG_NS = "http://www.w3.org/2000/svg";
export const SPARK = { w: 120, h: 32, pad: 2 };
export const CHART = { w: 840, h: 180, top: 16, bottom: 22 };

export function readConfig(id) {
  return JSON.parse(document.getElementById(id).textContent);
}

export function fmtScore(value) {
  if (value === null || value === undefined) return "–";
  const text = Number(value).toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const trimmed = text.endsWith(".0") ? text.slice(0, -2) : text;
  return trimmed === "-0" ? "0" : trimmed;
}

export function fmtInt(value) {
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: 0 });
}

export function movement(rank, previousRank, hasSnapshot) {
  if (!hasSnapshot) return { kind: "none", label: "–", title: "No earlier snapshot yet" };
  if (previousRank === null || previousRank === undefined) {
    return { kind: "new", label: "NEW", title: "New in the top positions since the last snapshot" };
  }
  if (previousRank > rank) return { kind: "up", label: `▲ ${previousRank - rank}`, title: `Up from #${previousRank}` };
  if (previousRank < rank) return { kind: "down", label: `▼ ${rank - previousRank}`, title: `Down from #${previousRank}` };
  return { kind: "same", label: "–", title: `Unchanged at #${rank}` };
}

export function initials(title) {
  const words = String(title || "").split(/\s+/).filter((w) => /^[\p{L}\p{N}]/u.test(w));
  return words.slice(0, 2).map((w) => w[0]).join("").toUpperCase() || "?";
}

export function placeholderHue(videoId) {
  return (Number(videoId) * 137) % 360;
}

// Only thumbnails served by this site are loaded: the page must work offline and must not
// send viewers' browsers to hosts nobody vetted. Anything else keeps the coloured placeholder.
export function sameOriginUrl(url) {
  if (!url) return null;
  try {
    return new URL(url, window.location.href).origin === window.location.origin ? url : null;
  } catch {
    return null;
  }
}

// A same-origin thumbnail that fails to load is dropped, uncovering the placeholder under it.
export function guardImage(img) {
  const drop = () => img.remove();
  if (img.complete && img.naturalWidth === 0) drop();
  else img.addEventListener("error", drop, { once: true });
}

export function fillThumb(thumb, video) {
  thumb.style.setProperty("--hue", String(placeholderHue(video.id)));
  thumb.querySelector(".thumb-initials").textContent = initials(video.title);
  const src = sameOriginUrl(video.thumbnail_url);
  let img = thumb.querySelector("img");
  if (!src) {
    if (img) img.remove();
    return;
  }
  if (img && img.getAttribute("src") === src) return;
  if (!img) {
    img = document.createElement("img");
    img.alt = "";
    img.decoding = "async";
    thumb.appendChild(img);
  }
  img.src = src;
  guardImage(img);
}

export function sparkline(values) {
  if (!values || values.length === 0) return { line: "", area: "", cx: -10, cy: -10 };
  const lo = Math.min(0, ...values);
  const hi = Math.max(0, ...values);
  const span = hi - lo || 1;
  const step = (SPARK.w - 2 * SPARK.pad) / Math.max(values.length - 1, 1);
  const inner = SPARK.h - 2 * SPARK.pad;
  const pts = values.map((v, i) => [SPARK.pad + i * step, SPARK.h - SPARK.pad - ((v - lo) / span) * inner]);
  const line = pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  const base = (SPARK.h - SPARK.pad - ((0 - lo) / span) * inner).toFixed(1);
  const first = pts[0][0].toFixed(1);
  const last = pts[pts.length - 1];
  const area = `M${first},${base} L${line.replaceAll(" ", " L")} L${last[0].toFixed(1)},${base} Z`;
  return { line, area, cx: last[0].toFixed(1), cy: last[1].toFixed(1) };
}

export function drawSparkline(svg, values) {
  const s = sparkline(values);
  svg.querySelector(".spark-area").setAttribute("d", s.area);
  svg.querySelector(".spark-line").setAttribute("points", s.line);
  const dot = svg.querySelector(".spark-dot");
  dot.setAttribute("cx", String(s.cx));
  dot.setAttribute("cy", String(s.cy));
}

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad2 = (n) => String(n).padStart(2, "0");

// Same geometry as web.display.activity_bars.
export function drawActivityChart(svg, values, startIso) {
  const start = new Date(startIso).getTime();
  const n = Math.max(values.length, 1);
  const lo = Math.min(0, ...values);
  const hi = Math.max(0, ...values);
  const span = hi - lo || 1;
  const plotH = CHART.h - CHART.top - CHART.bottom;
  const zero = CHART.top + (hi / span) * plotH;
  const slot = CHART.w / n;
  const bars = svg.querySelector(".chart-bars");
  const ticks = svg.querySelector(".chart-ticks");
  bars.replaceChildren();
  ticks.replaceChildren();
  values.forEach((v, i) => {
    const hour = new Date(start + i * 3600_000);
    const rect = svgEl("rect", {
      x: (i * slot + 0.5).toFixed(2),
      y: (CHART.top + ((hi - Math.max(v, 0)) / span) * plotH).toFixed(2),
      width: Math.max(slot - 1, 1).toFixed(2),
      height: ((Math.abs(v) / span) * plotH).toFixed(2),
    });
    if (v < 0) rect.setAttribute("class", "negative");
    const title = svgEl("title", {});
    const when = `${DAYS[hour.getUTCDay()]} ${pad2(hour.getUTCDate())} ${MONTHS[hour.getUTCMonth()]} ${pad2(hour.getUTCHours())}:00`;
    title.textContent = `${when} UTC: score ${fmtScore(v)}`;
    rect.appendChild(title);
    bars.appendChild(rect);
    if (hour.getUTCHours() === 0) {
      const x = (i * slot).toFixed(2);
      ticks.appendChild(svgEl("line", { x1: x, x2: x, y1: CHART.top, y2: zero.toFixed(2) }));
      const label = svgEl("text", { x, y: CHART.h - 6, dx: 3 });
      label.textContent = `${DAYS[hour.getUTCDay()]} ${pad2(hour.getUTCDate())}`;
      ticks.appendChild(label);
    }
  });
  const zeroLine = svg.querySelector(".chart-zero");
  zeroLine.setAttribute("y1", zero.toFixed(2));
  zeroLine.setAttribute("y2", zero.toFixed(2));
  svg.querySelector(".chart-max").textContent = `max ${fmtScore(hi)}`;
  return values.reduce((a, b) => a + b, 0);
}

// Same geometry and strings as web.display.rank_chart: series are lists of [epoch ms, rank or null].
const RANK_FLOOR = 10;
const DAY_MS = 86_400_000;

export function rankChart(series, startMs, endMs) {
  const ranks = series.flat().map(([, rank]) => rank).filter((rank) => rank !== null);
  const worst = Math.max(RANK_FLOOR, ...ranks);
  const plotH = CHART.h - CHART.top - CHART.bottom;
  const span = endMs - startMs || 1;
  const paths = series.map((points) => {
    const parts = [];
    let penDown = false;
    for (const [t, rank] of points) {
      if (rank === null) {
        penDown = false;
        continue;
      }
      const x = ((t - startMs) / span) * CHART.w;
      const y = CHART.top + ((rank - 1) / (worst - 1)) * plotH;
      parts.push(penDown ? `L${x.toFixed(2)},${y.toFixed(2)}` : `M${x.toFixed(2)},${y.toFixed(2)}h0`);
      penDown = true;
    }
    return parts.join(" ");
  });
  const ticks = [];
  for (let midnight = (Math.floor(startMs / DAY_MS) + 1) * DAY_MS; midnight < endMs; midnight += DAY_MS) {
    const day = new Date(midnight);
    ticks.push({ x: (((midnight - startMs) / span) * CHART.w).toFixed(2), label: `${DAYS[day.getUTCDay()]} ${pad2(day.getUTCDate())}` });
  }
  return { paths, ticks, worst: `#${worst}` };
}

export function drawRankChart(svg, series, startMs, endMs) {
  const chart = rankChart(series, startMs, endMs);
  svg.querySelectorAll(".rank-line").forEach((path, i) => path.setAttribute("d", chart.paths[i] || ""));
  const ticks = svg.querySelector(".chart-ticks");
  ticks.replaceChildren();
  for (const tick of chart.ticks) {
    ticks.appendChild(svgEl("line", { x1: tick.x, x2: tick.x, y1: CHART.top, y2: CHART.h - CHART.bottom }));
    const label = svgEl("text", { x: tick.x, y: CHART.h - 6, dx: 3 });
    label.textContent = tick.label;
    ticks.appendChild(label);
  }
  svg.querySelector(".chart-worst").textContent = chart.worst;
  return chart;
}

// Restart a CSS animation on an element (adding a class that is already there does nothing).
export function flash(el, className) {
  el.classList.remove(className);
  void el.offsetWidth;
  el.classList.add(className);
}

export async function getJSON(url, signal) {
  const response = await fetch(url, { signal, cache: "no-store", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${response.status} ${url}`);
  return response.json();
}

export function setLive(state, text, time) {
  const box = document.getElementById("live-status");
  if (!box) return;
  box.dataset.state = state;
  document.getElementById("live-text").textContent = text;
  const clock = document.getElementById("live-time");
  if (clock && time) {
    const d = new Date(time);
    clock.dateTime = d.toISOString();
    clock.textContent = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} UTC`;
  }
}

// Poll with setTimeout, not setInterval: a slow answer delays the next request instead of
// letting requests pile up. Failures back off (up to 10 s); a hidden tab stops polling.
export function poller(task, intervalMs, onError) {
  let timer = null;
  let failures = 0;
  let running = false;
  let generation = 0;
  const schedule = (delay) => {
    clearTimeout(timer);
    if (!document.hidden) timer = setTimeout(run, delay);
  };
  async function run() {
    const mine = ++generation;
    running = true;
    try {
      await task();
      failures = 0;
    } catch (err) {
      if (err && err.name === "AbortError") return;
      failures += 1;
      if (onError) onError(err, failures);
    } finally {
      running = false;
      // A newer run (forced by the user) owns the schedule from here.
      if (mine === generation) schedule(failures ? Math.min(intervalMs * 2 ** failures, 10_000) : intervalMs);
    }
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) clearTimeout(timer);
    else if (!running) run();
  });
  return {
    start: (delay = intervalMs) => schedule(delay),
    now: () => {
      clearTimeout(timer);
      run();
    },
  };
}
