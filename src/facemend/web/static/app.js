"use strict";
// The facemend page: controls built from /api/models, photos posted to /api/restore, results shown per photo.

const byId = (id) => document.getElementById(id);
const state = { models: [], limits: null, files: [], objectUrls: [] };

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function megabytes(bytes) {
  return `${+(bytes / 1e6).toFixed(1)} MB`;
}

function showError(message) {
  const box = byId("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(message) {
  byId("status").textContent = message;
}

async function init() {
  try {
    const [models, limits] = await Promise.all([getJSON("/api/models"), getJSON("/api/limits")]);
    state.models = models.models;
    state.limits = limits;
    const select = byId("model-select");
    for (const model of models.models) select.add(new Option(model.name, model.name));
    select.value = models.default;
    select.addEventListener("change", renderKnobs);
    renderKnobs();
    byId("limits").textContent =
      `up to ${limits.photos} photos, ${megabytes(limits.file_bytes)} each and ${megabytes(limits.request_bytes)} ` +
      `in all, ${+(limits.pixels / 1e6).toFixed(1)} megapixels each`;
  } catch (error) {
    showError(`cannot load the list of models: ${error.message}`);
  }
  setupFileInput();
  setupStrength();
  byId("restore-form").addEventListener("submit", restore);
  updateButton();
}

// One control per knob the model declares: a slider, or a number box for wide integer ranges (seeds).
function renderKnobs() {
  const model = state.models.find((m) => m.name === byId("model-select").value);
  byId("model-description").textContent = model ? model.description : "";
  const box = byId("knobs");
  box.replaceChildren();
  for (const knob of model ? model.knobs : []) {
    const id = `knob-${knob.name}`;
    const row = document.createElement("div");
    row.className = "knob";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = knob.name;
    const input = document.createElement("input");
    input.id = id;
    input.name = knob.name;
    input.dataset.testid = id;
    input.dataset.type = knob.type;
    const span = knob.high - knob.low;
    input.type = knob.type === "int" && span > 1000 ? "number" : "range";
    input.min = knob.low;
    input.max = knob.high;
    input.step = knob.type === "int" ? 1 : span / 100;
    input.value = knob.default;
    const value = document.createElement("output");
    value.htmlFor = id;
    value.textContent = input.value;
    input.addEventListener("input", () => (value.textContent = input.value));
    const help = document.createElement("small");
    help.textContent = `${knob.help} (${knob.low}–${knob.high}, default ${knob.default})`;
    row.append(label, input, value, help);
    box.append(row);
  }
}

// "auto" (the default) lets the server choose each face's strength from its damage; unticked, the slider sets it.
function setupStrength() {
  const auto = byId("strength-auto");
  const slider = byId("strength");
  const show = () => {
    slider.disabled = auto.checked;
    byId("strength-value").textContent = auto.checked ? "auto" : (+slider.value).toFixed(2);
  };
  auto.addEventListener("change", show);
  slider.addEventListener("input", show);
  show();
}

function knobValues() {
  const values = {};
  for (const input of byId("knobs").querySelectorAll("input")) {
    values[input.name] = input.dataset.type === "int" ? parseInt(input.value, 10) : parseFloat(input.value);
  }
  return values;
}

function setupFileInput() {
  const input = byId("file-input");
  const zone = byId("drop-zone");
  input.addEventListener("change", () => chooseFiles(input.files));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    chooseFiles(event.dataTransfer.files);
  });
}

function chooseFiles(fileList) {
  state.files = Array.from(fileList);
  const list = byId("file-list");
  list.replaceChildren(
    ...state.files.map((file) => {
      const item = document.createElement("li");
      item.textContent = `${file.name} (${megabytes(file.size)})`;
      return item;
    }),
  );
  showError(limitProblem(state.files) || "");
  updateButton();
}

// The server enforces the limits; checking here too saves uploading what it would refuse.
function limitProblem(files) {
  const limits = state.limits;
  if (!limits) return null;
  if (files.length > limits.photos) return `too many photos: ${files.length} (limit ${limits.photos} per request)`;
  const big = files.find((file) => file.size > limits.file_bytes);
  if (big) return `${big.name}: file too large (${megabytes(big.size)}, limit ${megabytes(limits.file_bytes)})`;
  const total = files.reduce((sum, file) => sum + file.size, 0);
  if (total > limits.request_bytes) {
    return `photos too large together (${megabytes(total)}, limit ${megabytes(limits.request_bytes)} per request)`;
  }
  return null;
}

function updateButton(busy = false) {
  byId("restore-button").disabled = busy || state.files.length === 0 || limitProblem(state.files) !== null;
}

async function restore(event) {
  event.preventDefault();
  const files = state.files; // the results are matched to these, even if the choice changes meanwhile
  const body = new FormData();
  for (const file of files) body.append("files", file, file.name);
  body.append("model", byId("model-select").value);
  body.append("knobs", JSON.stringify(knobValues()));
  body.append("strength", byId("strength-auto").checked ? "auto" : byId("strength").value);
  showError("");
  updateButton(true);
  setStatus(`restoring ${files.length} photo${files.length === 1 ? "" : "s"}…`);
  try {
    const response = await fetch("/api/restore", { method: "POST", body });
    const answer = await response.json().catch(() => ({ error: `the server answered HTTP ${response.status}` }));
    if (!response.ok) throw new Error(answer.error || `the server answered HTTP ${response.status}`);
    await showResults(answer, files);
    const faces = answer.photos.reduce((sum, photo) => sum + photo.faces, 0);
    setStatus(`${answer.photos.length} photo(s), ${faces} face(s) restored in ${answer.seconds.toFixed(1)} s`);
  } catch (error) {
    setStatus("");
    showError(error.message);
  } finally {
    updateButton(false);
  }
}

// Big PNGs as blob URLs: data URLs that long are slow to lay out and may not download.
async function blobUrl(dataUrl) {
  const blob = await (await fetch(dataUrl)).blob();
  return keep(URL.createObjectURL(blob));
}

function keep(url) {
  state.objectUrls.push(url);
  return url;
}

async function showResults(answer, files) {
  for (const url of state.objectUrls.splice(0)) URL.revokeObjectURL(url);
  const results = byId("results");
  results.replaceChildren();
  for (const [index, photo] of answer.photos.entries()) {
    const card = byId("result-template").content.firstElementChild.cloneNode(true);
    card.id = `result-${index}`;
    card.querySelector(".result-name").textContent = photo.name;
    card.querySelector(".result-summary").textContent =
      `${photo.width}×${photo.height}, ${photo.faces} face${photo.faces === 1 ? "" : "s"} restored`;
    card.querySelector(".warnings").replaceChildren(
      ...photo.warnings.map((text) => Object.assign(document.createElement("li"), { textContent: text })),
    );
    const restored = await blobUrl(photo.restored);
    showComparison(card, files[index], restored);
    const link = card.querySelector(".download");
    link.href = restored;
    link.download = `${photo.name.replace(/\.[^.]*$/, "")}_restored.png`;
    const faces = card.querySelector(".faces");
    for (const [number, crop] of photo.face_crops.entries()) {
      const figure = byId("face-template").content.firstElementChild.cloneNode(true);
      figure.querySelector(".face-before").src = crop.before;
      figure.querySelector(".face-after").src = crop.after;
      const tone = crop.single_tone ? ", luminance only" : "";
      figure.querySelector("figcaption").textContent =
        `face ${number + 1}: before | after (strength ${crop.strength.toFixed(2)}${tone})`;
      faces.append(figure);
    }
    results.append(card);
  }
}

// The restored photo underneath, the original on top, cut at the slider: left of it is before, right is after.
function showComparison(card, file, restoredUrl) {
  const compare = card.querySelector(".compare");
  const before = card.querySelector(".before");
  const slider = card.querySelector(".compare-slider");
  card.querySelector(".after").src = restoredUrl;
  before.addEventListener("error", () => {
    before.hidden = true;
    slider.closest("label").textContent = "(this browser cannot show the original's format)";
  });
  before.src = file ? keep(URL.createObjectURL(file)) : "";
  const split = () => compare.style.setProperty("--split", `${slider.value}%`);
  slider.addEventListener("input", split);
  split();
}

init();
