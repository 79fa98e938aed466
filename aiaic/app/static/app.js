// aiaic-app page: upload a photo or film (and a sound), follow the job, show input and result side by side.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  media: null, audio: null, limit: null, current: null, shown: null,
  results: new Map(),  // "media|audio|useAudio" -> job id, so switching the sound off and on again is instant
  fileIds: new WeakMap(), nextFileId: 1,
};

function fileId(f) {
  if (!f) return "none";
  if (!state.fileIds.has(f)) state.fileIds.set(f, state.nextFileId++);
  return String(state.fileIds.get(f));
}
function resultKey(useAudio) {
  return `${fileId(state.media)}|${fileId(state.audio)}|${useAudio}`;
}

function showMessage(text, isError) {
  const m = $("message");
  m.textContent = text || "";
  m.className = isError ? "error" : "";
}

function mib(n) { return (n / 1048576).toFixed(1) + " MiB"; }
function size(n) { return n < 1048576 ? Math.max(1, Math.round(n / 1024)) + " KiB" : mib(n); }

function preview(file, frame) {
  frame.replaceChildren();
  const type = file.type || "";
  const url = URL.createObjectURL(file);
  let el;
  if (type.startsWith("image/")) {
    el = document.createElement("img");
    el.alt = "input";
  } else if (type.startsWith("video/")) {
    el = document.createElement("video");
    el.controls = true; el.muted = true; el.preload = "metadata";
  } else {
    el = document.createElement("span");
    el.className = "muted";
    el.textContent = file.name;
    frame.append(el);
    return;
  }
  el.src = url;
  frame.append(el);
}

function clearResult() {
  $("result-frame").replaceChildren(Object.assign(document.createElement("span"),
    { className: "muted", textContent: "no result yet" }));
  $("result-note").textContent = "";
  $("r-text").textContent = "";
  $("r-plot-box").hidden = true;
  $("download").hidden = true;
  state.shown = null;
}

function setMedia(file) {
  if (!file) return;
  state.media = file;
  $("media-name").textContent = `${file.name} (${size(file.size)})`;
  preview(file, $("input-frame"));
  clearResult();
  showMessage("");
  $("colorize").disabled = false;
}

function setAudio(file) {
  state.audio = file;
  $("audio-name").textContent = file ? `${file.name} (${size(file.size)})` : "drop a sound here or click to choose";
  $("clear-audio").hidden = !file;
}

function wireDrop(zoneId, inputId, onFile) {
  const zone = $(zoneId), input = $(inputId);
  input.addEventListener("change", () => { if (input.files.length) onFile(input.files[0]); input.value = ""; });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    if (e.dataTransfer.files.length) onFile(e.dataTransfer.files[0]);
  });
}

async function submit(useAudio) {
  if (!state.media) return;
  const total = state.media.size + (state.audio ? state.audio.size : 0);
  if (state.limit && total > state.limit) {
    showMessage(`Upload too large: ${mib(total)}, over the server's limit of ${mib(state.limit)}.`, true);
    return;
  }
  const form = new FormData();
  form.append("media", state.media, state.media.name);
  if (state.audio) form.append("audio", state.audio, state.audio.name || "recording.webm");
  form.append("use_audio", useAudio ? "true" : "false");
  showMessage("Uploading…");
  let response, body;
  try {
    response = await fetch("/api/jobs", { method: "POST", body: form });
    body = await response.json();
  } catch (err) {
    showMessage(`The upload failed: ${err}`, true);
    return;
  }
  if (!response.ok) {
    showMessage(body.error || `The server answered ${response.status}.`, true);
    return;
  }
  state.results.set(resultKey(useAudio), body.id);
  state.current = body.id;
  clearResult();
  showMessage("");
  refresh();
}

function describe(job) {
  if (job.state === "queued") return `waiting (place ${job.position} in the queue)`;
  if (job.state === "running") {
    return job.total_frames ? `colourizing: frame ${job.done_frames} of ${job.total_frames}` : "colourizing…";
  }
  if (job.state === "done") return `done in ${job.seconds.toFixed(1)} s`;
  return `${job.state}: ${job.message}`;
}

function drawPlot(values) {
  const svg = $("r-plot"), ns = "http://www.w3.org/2000/svg";
  const W = 520, H = 120, left = 30, right = 8, top = 18, bottom = 20;
  const n = values.length, w = (W - left - right) / Math.max(n, 1);
  svg.replaceChildren();
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.append(el);
    return el;
  };
  add("text", { x: left, y: 12 }, "relevance r per second (1 = the sound fits the picture)");
  for (const [v, label] of [[0, "0"], [0.5, "0.5"], [1, "1"]]) {
    const y = top + (1 - v) * (H - top - bottom);
    add("line", { x1: left, x2: W - right, y1: y, y2: y, stroke: "#e3e7eb" });
    add("text", { x: 4, y: y + 4 }, label);
  }
  values.forEach((r, i) => {
    const h = r * (H - top - bottom);
    const bar = add("rect", { x: left + i * w + 1, y: H - bottom - h, width: Math.max(w - 2, 1), height: h,
      fill: "#2463c6", class: "r-bar", "data-second": i, "data-r": r });
    const title = document.createElementNS(ns, "title");
    title.textContent = `second ${i}: r = ${r.toFixed(2)}`;
    bar.append(title);
  });
  const step = Math.max(1, Math.ceil(n / 12));
  for (let i = 0; i < n; i += step) add("text", { x: left + i * w + 2, y: H - 5 }, `${i}s`);
  $("r-plot-box").hidden = false;
}

function showResult(job) {
  const url = `${job.result_url}?job=${job.id}`;
  const frame = $("result-frame");
  let el;
  if (job.kind === "image") {
    el = document.createElement("img");
    el.alt = "result";
  } else {
    el = document.createElement("video");
    el.controls = true; el.preload = "metadata";
  }
  el.src = url;
  el.dataset.job = job.id;
  frame.replaceChildren(el);
  const how = { audio: "guided by the sound", soundtrack: "guided by its soundtrack second by second",
    disabled: "sound switched off: the visual model alone", missing: "no sound: the visual model alone",
    silent: "the sound is silent: the visual model alone" }[job.guidance] || job.guidance;
  $("result-note").textContent = `(${how})`;
  if (job.kind === "image") {
    $("r-text").textContent = `relevance r = ${job.r.toFixed(3)}`;
    $("r-plot-box").hidden = true;
  } else {
    $("r-text").textContent = `mean relevance r = ${job.r.toFixed(3)} over ${job.r_per_second.length} s`;
    drawPlot(job.r_per_second);
  }
  const dl = $("download");
  dl.href = `${job.result_url}?download=1`;
  dl.download = job.download_name;
  dl.textContent = `Download ${job.download_name}`;
  dl.hidden = false;
  state.shown = job.id;
}

function renderJobs(jobs) {
  const list = $("jobs");
  list.replaceChildren();
  for (const job of jobs.slice(-10).reverse()) {  // newest first
    const li = document.createElement("li");
    li.dataset.id = job.id;
    li.dataset.state = job.state;
    if (job.id === state.current) li.className = "current";
    li.textContent = `${job.name}${job.use_audio ? "" : " (sound off)"}: ${describe(job)} `;
    if (job.state === "done" && job.id !== state.current) {
      const a = document.createElement("a");
      a.textContent = "show";
      a.onclick = () => { state.current = job.id; state.shown = null; refresh(); };
      li.append(a);
    }
    list.append(li);
  }
}

function renderCurrent(job) {
  document.body.dataset.state = job ? job.state : "";
  document.body.dataset.job = job ? job.id : "";
  const box = $("progress-box");
  if (!job) { box.hidden = true; return; }
  const active = job.state === "queued" || job.state === "running";
  box.hidden = !active;
  if (active) {
    const p = $("progress");
    if (job.total_frames) { p.max = job.total_frames; p.value = job.done_frames; } else { p.removeAttribute("value"); }
    $("progress-text").textContent = describe(job);
  }
  if (job.state === "done" && state.shown !== job.id) showResult(job);
  if (job.state === "failed") showMessage(job.message, true);
  if (job.state === "cancelled") showMessage(`Cancelled (${job.message}).`, false);
}

let polling = null;
async function refresh() {
  let jobs;
  try {
    jobs = await (await fetch("/api/jobs")).json();
  } catch (err) {
    showMessage(`The server does not answer: ${err}`, true);
    return;
  }
  renderJobs(jobs);
  renderCurrent(jobs.find((j) => j.id === state.current) || null);
  const busy = jobs.some((j) => j.state === "queued" || j.state === "running");
  clearTimeout(polling);
  polling = setTimeout(refresh, busy ? 300 : 2000);
}

async function record() {
  const button = $("record");
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const rec = new MediaRecorder(stream), chunks = [];
    rec.ondataavailable = (e) => chunks.push(e.data);
    rec.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      const blob = new Blob(chunks, { type: rec.mimeType || "audio/webm" });
      setAudio(new File([blob], "recording.webm", { type: blob.type }));
      button.disabled = false; button.textContent = "Record 3 s";
    };
    rec.start();
    button.disabled = true; button.textContent = "Recording…";
    setTimeout(() => rec.stop(), 3000);
  } catch (err) {
    showMessage(`Cannot record: ${err.message || err}`, true);
  }
}

async function init() {
  wireDrop("media-drop", "media-input", setMedia);
  wireDrop("audio-drop", "audio-input", setAudio);
  $("clear-audio").onclick = () => setAudio(null);
  $("colorize").onclick = () => submit($("use-audio").checked);
  $("cancel").onclick = () => { if (state.current) fetch(`/api/jobs/${state.current}/cancel`, { method: "POST" }).then(refresh); };
  $("use-audio").onchange = () => {
    if (!state.media || state.current === null) return;
    const known = state.results.get(resultKey($("use-audio").checked));
    if (known) { state.current = known; state.shown = null; refresh(); } else { submit($("use-audio").checked); }
  };
  if (navigator.mediaDevices && window.MediaRecorder) {
    $("record").hidden = false;
    $("record").onclick = record;
  }
  try {
    const info = await (await fetch("/api/info")).json();
    state.limit = info.max_upload_bytes;
    const m = info.model;
    $("model-info").textContent = `model: ${m.variant || "backbone"} at ${m.image_size} px on ${m.device}; ` +
      `uploads up to ${mib(info.max_upload_bytes)}`;
  } catch (err) {
    showMessage(`The server does not answer: ${err}`, true);
  }
  refresh();
}

init();
