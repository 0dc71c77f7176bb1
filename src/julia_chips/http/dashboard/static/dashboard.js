// The dashboard's live part: one EventSource on /events/stream (server-sent events fed from
// the streams), redrawing what an event changes. Values are set with textContent, never as
// markup: chip ids and reasons are strings anyone reaching NATS may choose.
"use strict";

const body = document.body;
const live = document.getElementById("live");
const STATES = ["provisioning", "activating", "warming", "ready", "active", "cooling",
                "banned", "retired"];

function utc(iso) {
  return iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) : "";
}

function setText(el, value) {
  if (el) el.textContent = value === null || value === undefined ? "" : String(value);
}

function addToCount(id, delta) {
  const el = document.getElementById(id);
  if (el) el.textContent = String(Number(el.textContent) + delta);
}

function badge(cell, status) {
  cell.replaceChildren();
  const span = document.createElement("span");
  span.className = "badge s-" + (STATES.includes(status) ? status : "unknown");
  span.textContent = status;
  cell.appendChild(span);
}

function progress(cell, fraction) {
  const shown = Math.min(Math.max(Number(fraction) || 0, 0), 1);
  cell.replaceChildren();
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = shown;
  const pct = document.createElement("span");
  pct.className = "pct";
  pct.textContent = Math.round(shown * 100) + "%";
  cell.append(bar, " ", pct);
}

function health(score) {
  return score === null || score === undefined ? "" : Number(score).toFixed(2);
}

function newRow(line) {
  const row = document.createElement("tr");
  row.dataset.chip = line.id;
  const cells = ["id", "status", "number", "progress", "day", "cap", "health", "doctors"];
  for (const name of cells) {
    const cell = document.createElement("td");
    cell.className = "c-" + name;
    row.appendChild(cell);
  }
  const link = document.createElement("a");
  link.href = "/ui/chips/" + encodeURIComponent(line.id);
  const code = document.createElement("code");
  code.textContent = line.id.slice(0, 8);
  link.appendChild(code);
  row.querySelector(".c-id").appendChild(link);
  row.querySelector(".c-doctors").textContent = "0";
  document.querySelector("#chips tbody").appendChild(row);
  return row;
}

function drawRow(row, line) {
  row.dataset.status = line.status;
  badge(row.querySelector(".c-status"), line.status);
  setText(row.querySelector(".c-number"), line.number);
  progress(row.querySelector(".c-progress"), line.warmer_progress);
  setText(row.querySelector(".c-day"), line.warm_day);
  setText(row.querySelector(".c-cap"), line.daily_cap);
  setText(row.querySelector(".c-health"), health(line.health_score));
  row.hidden = Boolean(body.dataset.filter) && body.dataset.filter !== line.status;
  row.classList.remove("flash");
  void row.offsetWidth;  // restart the highlight
  row.classList.add("flash");
}

function tick(update) {
  const list = document.getElementById("ticker");
  if (!list) return;
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = "/ui/chips/" + encodeURIComponent(update.chip_id || "");
  link.textContent = (update.chip_id || "fleet").slice(0, 8);
  item.append(utc(update.occurred_at) + " ", link, " " + update.type +
              (update.status ? " → " + update.status : ""));
  list.prepend(item);
  while (list.children.length > 30) list.lastElementChild.remove();
}

function onFleetChip(update) {
  const before = update.previous_status;
  const after = update.status;
  if (after && before !== after) {
    if (before) addToCount("count-" + before, -1);
    else addToCount("chips-total", 1);
    addToCount("count-" + after, 1);
    if (after === "banned") addToCount("bans-7d", 1);
  }
  if (update.line) {
    const found = document.querySelector(`#chips tr[data-chip="${CSS.escape(update.chip_id)}"]`);
    const showsAll = !body.dataset.filter || body.dataset.filter === update.line.status;
    if (found || showsAll) drawRow(found || newRow(update.line), update.line);
  }
  tick(update);
}

function onChipPage(update) {
  if (update.line) {
    const status = document.getElementById("chip-status");
    status.className = "badge s-" + (STATES.includes(update.line.status) ? update.line.status
                                                                          : "unknown");
    status.textContent = update.line.status;
    const field = (name) => document.querySelector(`#facts dd[data-field="${name}"]`);
    setText(field("number"), update.line.number);
    progress(field("warmer_progress"), update.line.warmer_progress);
    setText(field("warm_day"), update.line.warm_day);
    setText(field("daily_cap"), update.line.daily_cap);
    setText(field("health_score"), health(update.line.health_score));
    setText(field("cooling_until"), utc(update.line.cooling_until));
    setText(field("cool_reason"), update.line.cool_reason);
    setText(field("ban_reason"), update.line.ban_reason);
  }
  const rows = document.querySelector("#events tbody");
  if (rows.querySelector(`tr[data-seq="${update.seq}"]`)) return;
  const row = document.createElement("tr");
  row.dataset.seq = String(update.seq);
  for (const [name, value] of [["seq", update.seq], ["when", utc(update.occurred_at)],
                               ["type", update.type]]) {
    const cell = document.createElement("td");
    cell.className = name;
    cell.textContent = String(value);
    row.appendChild(cell);
  }
  const details = document.createElement("td");
  details.className = "details";
  const code = document.createElement("code");
  code.textContent = update.details;
  details.appendChild(code);
  row.appendChild(details);
  row.classList.add("flash");
  rows.prepend(row);
}

function onFleet(update) {
  setText(document.getElementById("brake"), update.engaged ? "engaged" : "released");
  setText(document.getElementById("brake-detail"),
          update.engaged ? update.reason + " until " + utc(update.until) + " UTC"
                         : update.reason);
  tick(update);
}

function connect() {
  const params = new URLSearchParams();
  if (body.dataset.chip) params.set("chip", body.dataset.chip);
  if (body.dataset.after) params.set("after", body.dataset.after);
  // The browser resumes by itself, sending the last id as Last-Event-ID.
  const source = new EventSource("/events/stream?" + params.toString());
  source.addEventListener("open", () => {
    live.textContent = "live";
    live.className = "live on";
  });
  source.addEventListener("error", () => {
    live.textContent = "reconnecting…";
    live.className = "live off";
  });
  source.addEventListener("chip", (message) => {
    const update = JSON.parse(message.data);
    if (body.dataset.page === "chip") onChipPage(update);
    else onFleetChip(update);
  });
  source.addEventListener("fleet", (message) => onFleet(JSON.parse(message.data)));
}

connect();
