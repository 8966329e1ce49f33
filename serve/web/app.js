// segkit's page: posts the chosen image to /v1/segment and shows the result. Plain script, no
// libraries: it must work offline, from the binary alone.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, result: null, labels: null, orig: null, color: null, urls: [] };

function setState(s) { document.body.dataset.state = s; }

function showError(msg) {
  const e = $("error");
  e.textContent = msg;
  e.hidden = !msg;
  if (msg) setState("error");
}

function rgb(c) { return `rgb(${c[0]}, ${c[1]}, ${c[2]})`; }

function swatch(c) {
  const s = document.createElement("span");
  s.className = "swatch";
  s.style.background = rgb(c);
  return s;
}

function fact(dl, name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value;
  dl.append(dt, dd);
}

async function apiError(resp) {
  try {
    const e = await resp.json();
    return e.error || resp.statusText;
  } catch (_) {
    return `${resp.status} ${resp.statusText}`;
  }
}

// The model card: classes, protocol, and DynOPool's learned level sizes.
async function loadModel() {
  const resp = await fetch("/v1/model");
  if (!resp.ok) throw new Error(await apiError(resp));
  const m = await resp.json();
  state.model = m;
  $("model-name").textContent = `${m.model}, ${m.resize} resizing, ${m.classes.length} classes`;
  const dl = $("card-facts");
  fact(dl, "model", m.model);
  fact(dl, "resizing", m.resize);
  if (m.checkpoint) fact(dl, "checkpoint", m.checkpoint);
  fact(dl, "parameters", `${(m.params / 1e6).toFixed(2)} M`);
  fact(dl, "test size", `${m.test_size[0]}×${m.test_size[1]}`);
  fact(dl, "GMACs", `${m.gmacs.toFixed(3)} at the test size`);
  const p = m.protocol;
  let proto = p.mode === "slide" ? `slide ${p.crop}/${p.stride}` : "whole image";
  proto += `, rescaled to fit ${p.scale[0]}×${p.scale[1]}`;
  if (p.flip) proto += ", flip";
  if (p.scales.length > 1) proto += `, scales ${p.scales.join(" ")}`;
  fact(dl, "protocol", proto);
  if (p.convention !== "segkit") fact(dl, "convention", p.convention);
  if (m.imported) fact(dl, "imported from", `${m.imported.family} (${m.imported.from})`);
  if (m.resize === "dynopool") {
    const tb = $("levels").querySelector("tbody");
    m.levels.forEach((l, i) => {
      const tr = document.createElement("tr");
      // Level "half" and branch 0 come from the stem's pool, branch k from transition k's.
      const a = i === 0 ? null : m.alphas[Math.max(0, i - 2)];
      for (const v of [l.name, `${l.size[0]}×${l.size[1]}`, a ? `${a.alpha[0].toFixed(3)} × ${a.alpha[1].toFixed(3)}` : "—"]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.append(td);
      }
      tb.append(tr);
    });
    $("levels-box").hidden = false;
  }
  const ul = $("classes");
  for (const c of m.classes) {
    const li = document.createElement("li");
    li.append(swatch(c.color), `${c.class} ${c.name}`);
    ul.append(li);
  }
}

function decodeBase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function blobURL(bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  state.urls.push(url);
  return url;
}

async function segment(file) {
  if (!state.model) throw new Error("the model card has not loaded yet");
  showError("");
  setState("busy");
  for (const u of state.urls) URL.revokeObjectURL(u);
  state.urls = [];
  // The browser turns the image upright by its EXIF orientation, as the server does.
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch (_) {
    bitmap = null; // the server's message says what is wrong with it
  }
  const resp = await fetch("/v1/segment?format=json&include=labels,index,color", {
    method: "POST",
    headers: { "Content-Type": file.type || "application/octet-stream" },
    body: file,
  });
  if (!resp.ok) throw new Error(await apiError(resp));
  const r = await resp.json();
  state.result = r;
  state.labels = decodeBase64(r.labels);
  const w = r.width, h = r.height;

  state.orig = new OffscreenCanvas(w, h);
  if (bitmap) state.orig.getContext("2d").drawImage(bitmap, 0, 0, w, h);

  // The colour mask, from the labels and the model's palette.
  state.color = new OffscreenCanvas(w, h);
  const cctx = state.color.getContext("2d");
  const img = cctx.createImageData(w, h);
  const palette = state.model.classes.map((c) => c.color);
  for (let i = 0; i < w * h; i++) {
    const c = palette[state.labels[i]] || [0, 0, 0];
    img.data[4 * i] = c[0];
    img.data[4 * i + 1] = c[1];
    img.data[4 * i + 2] = c[2];
    img.data[4 * i + 3] = 255;
  }
  cctx.putImageData(img, 0, 0);

  const view = $("view"), grid = $("grid-canvas");
  view.width = w;
  view.height = h;
  legend(r);
  gridChoices(r);
  downloads(file.name, r);
  // Small images are shown enlarged (pixelated), large ones fit the column.
  const shown = Math.max(w, Math.min(512, 8 * w));
  view.style.width = `${shown}px`;
  // The grid is drawn at the displayed size: thin lines however much the image is enlarged.
  grid.width = Math.round(shown * (window.devicePixelRatio || 1));
  grid.height = Math.round(grid.width * h / w);
  $("timing").textContent = `${w}×${h} (w×h), network input ${r.network_input[1]}×${r.network_input[0]}; ` +
    `inference ${r.timing_ms.inference} ms (batch of ${r.batch_size}), total ${r.timing_ms.total} ms`;
  $("controls").hidden = $("stage").hidden = $("legend-box").hidden = false;
  render();
  setState("done");
}

function legend(r) {
  const ul = $("legend");
  ul.replaceChildren();
  for (const c of r.classes) {
    const li = document.createElement("li");
    li.dataset.class = c.class;
    const share = document.createElement("span");
    share.className = "share";
    share.textContent = `${(100 * c.share).toFixed(1)}%`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.name;
    li.append(swatch(c.color), name, share);
    ul.append(li);
  }
}

// The levels whose sampling grid can be drawn: DynOPool's learned sizes at this image's input.
function gridChoices(r) {
  const sel = $("grid");
  const keep = sel.value;
  sel.replaceChildren(new Option("none", ""));
  if (state.model.resize !== "dynopool") return;
  for (const l of r.levels) {
    if (l.name === "in") continue;
    const name = l.name === "half" ? "stem (half)" : `branch ${l.name}`;
    sel.append(new Option(`${name}: ${l.size[0]}×${l.size[1]}`, l.name));
  }
  sel.value = keep || "0"; // branch 0: the finest grid the network computes on
  $("grid-label").hidden = false;
}

function downloads(name, r) {
  const base = name.replace(/\.[^.]*$/, "") || "image";
  const d = $("downloads");
  d.replaceChildren();
  const link = (text, href, file) => {
    const a = document.createElement("a");
    a.textContent = text;
    a.href = href;
    a.download = file;
    d.append(a);
  };
  link("class indices (PNG)", blobURL(decodeBase64(r.index_png), "image/png"), `${base}.png`);
  link("colour mask (PNG)", blobURL(decodeBase64(r.color_png), "image/png"), `${base}_color.png`);
  const a = document.createElement("a");
  a.textContent = "this view (PNG)";
  a.href = "#";
  a.addEventListener("click", (ev) => {
    ev.preventDefault();
    $("view").toBlob((b) => {
      const tmp = document.createElement("a");
      tmp.href = URL.createObjectURL(b);
      tmp.download = `${base}_view.png`;
      tmp.click();
      setTimeout(() => URL.revokeObjectURL(tmp.href), 1000);
    });
  });
  d.append(a);
}

function currentView() { return document.querySelector('input[name="view"]:checked').value; }

function render() {
  if (!state.result) return;
  const view = $("view"), ctx = view.getContext("2d");
  const mode = currentView();
  const opacity = $("opacity").value / 100;
  $("opacity-value").textContent = `${$("opacity").value}%`;
  $("opacity-label").hidden = mode !== "overlay";
  ctx.globalAlpha = 1;
  ctx.clearRect(0, 0, view.width, view.height);
  if (mode === "color") {
    ctx.drawImage(state.color, 0, 0);
  } else {
    ctx.drawImage(state.orig, 0, 0);
    if (mode === "overlay") {
      ctx.globalAlpha = opacity;
      ctx.drawImage(state.color, 0, 0);
      ctx.globalAlpha = 1;
    }
  }
  drawGrid();
}

// drawGrid draws the chosen level's sampling grid: the cells each feature of that level covers
// (the network input is the whole image, rescaled, so the grid spans the image).
function drawGrid() {
  const g = $("grid-canvas"), ctx = g.getContext("2d");
  ctx.clearRect(0, 0, g.width, g.height);
  const name = $("grid").value;
  const l = name && state.result.levels.find((x) => x.name === name);
  if (!l) return;
  const [lh, lw] = l.size;
  const sy = g.height / lh, sx = g.width / lw;
  ctx.strokeStyle = "rgba(255, 255, 255, 0.75)";
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let i = 1; i < lh; i++) { ctx.moveTo(0, i * sy); ctx.lineTo(g.width, i * sy); }
  for (let j = 1; j < lw; j++) { ctx.moveTo(j * sx, 0); ctx.lineTo(j * sx, g.height); }
  ctx.stroke();
  // The sample points, where they are far enough apart to see.
  if (sx >= 6 && sy >= 6) {
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    for (let i = 0; i < lh; i++) {
      for (let j = 0; j < lw; j++) ctx.fillRect((j + 0.5) * sx - 1, (i + 0.5) * sy - 1, 2, 2);
    }
  }
}

// pixelAt maps a mouse position on the (scaled) canvas to an image pixel.
function pixelAt(ev) {
  const view = $("view"), rect = view.getBoundingClientRect();
  const x = Math.floor((ev.clientX - rect.left) * view.width / rect.width);
  const y = Math.floor((ev.clientY - rect.top) * view.height / rect.height);
  if (x < 0 || y < 0 || x >= view.width || y >= view.height) return null;
  return { x, y };
}

function hover(ev) {
  const p = state.result && pixelAt(ev);
  for (const li of $("legend").children) li.classList.remove("hover");
  if (!p) {
    $("pixel").textContent = "";
    return;
  }
  const k = state.labels[p.y * state.result.width + p.x];
  const c = state.model.classes[k];
  const el = $("pixel");
  el.dataset.x = p.x;
  el.dataset.y = p.y;
  el.dataset.class = k;
  el.textContent = `(${p.x}, ${p.y}): ${c ? c.name : "class " + k}`;
  const li = $("legend").querySelector(`li[data-class="${k}"]`);
  if (li) li.classList.add("hover");
}

function pick(file) {
  if (!file) return;
  segment(file).catch((e) => showError(e.message));
}

function init() {
  loadModel().then(() => setState("ready")).catch((e) => showError("the model card: " + e.message));
  $("file").addEventListener("change", (ev) => pick(ev.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    pick(ev.dataTransfer.files[0]);
  });
  for (const r of document.querySelectorAll('input[name="view"]')) r.addEventListener("change", render);
  $("opacity").addEventListener("input", render);
  $("grid").addEventListener("change", drawGrid);
  $("view").addEventListener("mousemove", hover);
  $("view").addEventListener("mouseleave", hover);
}

init();
