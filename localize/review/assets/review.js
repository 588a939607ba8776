// The review page: NiiVue views of OUT's volumes, the lesion table, review actions.
// findings.json points are LPS mm; NiiVue's world is RAS mm (x and y negated).
"use strict";
const BASE = location.pathname.replace(/[^/]*$/, "");  // /t/<token>/
const REGION_RGB = {local: [230, 25, 75], nodal: [255, 180, 0], distant: [0, 130, 200], unclassified: [160, 160, 160]};
const LABEL_OPACITY = 0.4;  // lesion labels tint the PET, which stays readable beneath
const lpsToRas = (p) => [-p[0], -p[1], p[2]];
const state = {lesions: [], review: null, current: -1, pet: null, ct: null, mr: null, labels: null};
const $ = (id) => document.getElementById(id);

async function getJson(path) {
  const response = await fetch(BASE + path);
  return response.ok ? response.json() : null;
}

const exists = (path) => state.review.files.includes(path.replace(/^out\//, ""));

async function api(action, body) {
  $("status").textContent = action + "...";
  const response = await fetch(BASE + "api/" + action, {method: "POST", headers: {"Content-Type": "application/json"},
                                                       body: JSON.stringify(body || {})});
  const doc = await response.json();
  if (!response.ok) { $("status").textContent = doc.error; throw new Error(doc.error); }
  state.review = doc;
  $("status").textContent = action + " saved " + doc.updated;
  renderTable();
  return doc;
}

function decision(id) {
  const review = state.review;
  if (review.deleted.includes(id)) return "deleted";
  return review.decisions[String(id)] || "";
}

function allLesions() {
  const relabels = state.review.relabels;
  return state.lesions.concat(state.review.added).map((l) => Object.assign({}, l, relabels[String(l.id)] || {}));
}

function renderTable() {
  const body = $("lesions");
  body.textContent = "";
  allLesions().forEach((lesion, index) => {
    const row = document.createElement("tr");
    const d = decision(lesion.id);
    row.className = "lesion" + (index === state.current ? " current" : "") + (d === "reject" || d === "deleted" ? " reject" : "");
    row.dataset.id = lesion.id;
    const rgb = REGION_RGB[lesion.region] || REGION_RGB.unclassified;
    const sites = state.review.sites.map((s) => `<option${s === lesion.site ? " selected" : ""}>${s}</option>`).join("");
    row.innerHTML = `<td>${lesion.id}</td><td><span class="sw" style="background:rgb(${rgb})"></span>${lesion.region}
      <select class="site">${sites}</select></td><td>${lesion.mitnm || "&ndash;"}</td>
      <td>${lesion.suv_max.toFixed(1)}</td><td>${lesion.volume_ml.toFixed(2)}</td>
      <td class="act"><button class="accept"${d === "accept" ? " disabled" : ""}>accept</button>
      <button class="reject"${d === "reject" ? " disabled" : ""}>reject</button></td>`;
    row.addEventListener("click", (event) => { if (event.target.tagName !== "BUTTON" && event.target.tagName !== "SELECT") jump(index); });
    row.querySelector(".accept").addEventListener("click", () => api("decision", {lesion: lesion.id, decision: "accept"}));
    row.querySelector(".reject").addEventListener("click", () => api("decision", {lesion: lesion.id, decision: "reject"}));
    row.querySelector(".site").addEventListener("change", (event) => api("relabel", {lesion: lesion.id, site: event.target.value}));
    body.appendChild(row);
  });
}

function jump(index) {
  const lesions = allLesions();
  if (!lesions.length) return;
  state.current = (index + lesions.length) % lesions.length;
  const ras = lpsToRas(lesions[state.current].target_lps_mm);
  nv.scene.crosshairPos = nv.mm2frac(ras);
  nv.drawScene();
  nv.createOnLocationChange();
  renderTable();
}

function crosshairLps() {
  const ras = nv.frac2mm(nv.scene.crosshairPos);
  return [-ras[0], -ras[1], ras[2]];
}

function suvAt(mm) {
  const v = state.pet.mm2vox(mm);
  return state.pet.getValue(v[0], v[1], v[2]);
}

function labelLut(lesions) {
  const n = Math.max(0, ...lesions.map((l) => l.label || 0));
  const lut = {R: [], G: [], B: [], A: [], I: [], labels: []};
  for (let i = 0; i <= n; i++) {
    const lesion = lesions.find((l) => l.label === i);
    const rgb = lesion ? (REGION_RGB[lesion.region] || REGION_RGB.unclassified) : [0, 0, 0];
    lut.R.push(rgb[0]); lut.G.push(rgb[1]); lut.B.push(rgb[2]); lut.A.push(i && lesion ? 255 : 0);
    lut.I.push(i); lut.labels.push(lesion ? "lesion " + lesion.id : "");
  }
  return lut;
}

function mmOf(affine, i, j, k) {
  return [0, 1, 2].map((r) => affine[r][0] * i + affine[r][1] * j + affine[r][2] * k + affine[r][3]);
}

// Coronal PET MIP (maximum over the file's second axis, the anterior-posterior one of an axial series),
// patient's right on the left, head up; lesion targets marked; a click moves the crosshair there.
function drawMip() {
  const pet = state.pet, [nx, ny, nz] = pet.hdr.dims.slice(1, 4), affine = pet.hdr.affine;
  const flipX = mmOf(affine, 1, 0, 0)[0] > mmOf(affine, 0, 0, 0)[0];  // RAS x grows with i: i runs to the patient's right
  const up = mmOf(affine, 0, 0, 1)[2] > mmOf(affine, 0, 0, 0)[2];
  const mip = new Float32Array(nx * nz);
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    const v = pet.img[i + nx * (j + ny * k)] * (pet.hdr.scl_slope || 1) + (pet.hdr.scl_inter || 0);
    if (v > mip[i + nx * k]) mip[i + nx * k] = v;
  }
  const canvas = $("mip"), scale = canvas.width / nx;
  canvas.height = Math.round(nz * scale * Math.abs(affine[2][2] / affine[0][0]));
  const off = new OffscreenCanvas(nx, nz), ctx = off.getContext("2d"), pixels = ctx.createImageData(nx, nz);
  const top = Number($("pet-max").value);
  for (let k = 0; k < nz; k++) for (let i = 0; i < nx; i++) {
    const g = 255 - Math.min(255, Math.round(255 * mip[i + nx * k] / top));  // inverted grey
    const col = flipX ? nx - 1 - i : i, row = up ? nz - 1 - k : k, at = 4 * (col + nx * row);
    pixels.data.set([g, g, g, 255], at);
  }
  ctx.putImageData(pixels, 0, 0);
  const view = canvas.getContext("2d");
  view.imageSmoothingEnabled = true;
  view.drawImage(off, 0, 0, canvas.width, canvas.height);
  const toCanvas = (ras) => {  // RAS mm -> MIP canvas pixel, through the voxel grid
    const x0 = mmOf(affine, 0, 0, 0), di = mmOf(affine, 1, 0, 0)[0] - x0[0], dk = mmOf(affine, 0, 0, 1)[2] - x0[2];
    const i = (ras[0] - x0[0]) / di, k = (ras[2] - x0[2]) / dk;
    return [((flipX ? nx - 1 - i : i) + 0.5) * canvas.width / nx, ((up ? nz - 1 - k : k) + 0.5) * canvas.height / nz];
  };
  allLesions().forEach((lesion) => {
    const [x, y] = toCanvas(lpsToRas(lesion.target_lps_mm));
    view.strokeStyle = `rgb(${REGION_RGB[lesion.region] || REGION_RGB.unclassified})`;
    view.lineWidth = 2;
    view.beginPath(); view.arc(x, y, 6, 0, 2 * Math.PI); view.stroke();
  });
  canvas.onclick = (e) => {
    const ras = nv.frac2mm(nv.scene.crosshairPos);
    const x0 = mmOf(affine, 0, 0, 0), di = mmOf(affine, 1, 0, 0)[0] - x0[0], dk = mmOf(affine, 0, 0, 1)[2] - x0[2];
    const col = e.offsetX * nx / canvas.clientWidth - 0.5, row = e.offsetY * nz / canvas.clientHeight - 0.5;
    const i = flipX ? nx - 1 - col : col, k = up ? nz - 1 - row : row;
    nv.scene.crosshairPos = nv.mm2frac([x0[0] + i * di, ras[1], x0[2] + k * dk]);
    nv.drawScene();
    nv.createOnLocationChange();
  };
}

function bindControls() {
  const refresh = () => nv.updateGLVolume();
  $("pet-cmap").onchange = (e) => { state.pet.colormap = e.target.value; refresh(); };
  $("pet-max").oninput = (e) => { state.pet.cal_max = Number(e.target.value); $("pet-max-v").textContent = e.target.value; refresh(); };
  $("pet-opacity").oninput = (e) => { state.pet.opacity = Number(e.target.value); refresh(); };
  $("window").onchange = (e) => { if (state.ct) { [state.ct.cal_min, state.ct.cal_max] = e.target.value.split(",").map(Number); refresh(); } };
  $("show-labels").onchange = (e) => { state.labels.opacity = e.target.checked ? LABEL_OPACITY : 0; refresh(); };
  $("show-mr").onchange = (e) => { state.mr.opacity = e.target.checked ? 1 : 0; if (state.ct) state.ct.opacity = e.target.checked ? 0 : 1; refresh(); };
  $("save-reviewer").onclick = () => api("reviewer", {name: $("reviewer").value});
  $("add").onclick = () => api("add", {point_lps_mm: crosshairLps()});
  $("export").onclick = () => api("export", {});
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    if (e.key === "n") jump(state.current + 1);
    if (e.key === "p") jump(state.current - 1);
  });
  $("gl").addEventListener("mousemove", (e) => {
    const dpr = nv.uiData.dpr || 1;
    const frac = nv.canvasPos2frac([e.offsetX * dpr, e.offsetY * dpr]);
    if (frac[0] < 0) { $("hover").textContent = ""; return; }
    const mm = nv.frac2mm(frac);
    const lps = [-mm[0], -mm[1], mm[2]].map((v) => v.toFixed(1)).join(", ");
    $("hover").textContent = `SUV ${suvAt(mm).toFixed(2)} at LPS (${lps}) mm`;
  });
}

const nv = new niivue.Niivue({backColor: [0, 0, 0, 1], crosshairColor: [0, 1, 0, 1], show3Dcrosshair: true,
                              multiplanarShowRender: niivue.SHOW_RENDER.NEVER, isColorbar: false});

async function main() {
  state.review = await getJson("api/review");
  const findings = await getJson(exists("out/automatic/findings.json") ? "out/automatic/findings.json" : "out/findings.json");
  state.lesions = findings.lesions;
  $("reviewer").value = state.review.reviewer || "";
  $("meta").textContent = `${findings.study.patient_id || ""} · ${findings.tracer.radiopharmaceutical || findings.tracer.family} · ` +
    `${findings.lesions.length} lesion(s) · ${findings.staging.summary}`;
  const labels = exists("out/automatic/lesions.nii.gz") ? "out/automatic/lesions.nii.gz" : "out/lesions.nii.gz";
  const volumes = [];
  const hasCt = exists("out/volumes/ct.nii.gz");
  const hasMr = exists("out/volumes/mr.nii.gz");
  if (hasCt) volumes.push({url: BASE + "out/volumes/ct.nii.gz", name: "ct.nii.gz", colormap: "gray", cal_min: -160, cal_max: 240});
  if (hasMr) volumes.push({url: BASE + "out/volumes/mr.nii.gz", name: "mr.nii.gz", colormap: "gray", opacity: 0});
  volumes.push({url: BASE + "out/volumes/pet_suv.nii.gz", name: "pet_suv.nii.gz", colormap: "hot", cal_min: 1, cal_max: 10,
                opacity: hasCt ? 0.6 : 1});
  volumes.push({url: BASE + labels, name: "lesions.nii.gz", opacity: LABEL_OPACITY});
  await nv.attachTo("gl");
  nv.setSliceType(nv.sliceTypeMultiplanar);
  await nv.loadVolumes(volumes);
  [state.ct, state.mr, state.pet, state.labels] = [hasCt ? nv.volumes[0] : null, hasMr ? nv.volumes[hasCt ? 1 : 0] : null,
    nv.volumes[volumes.length - 2], nv.volumes[volumes.length - 1]];
  if (hasMr) $("mr-label").hidden = false;
  state.labels.setColormapLabel(labelLut(findings.lesions));
  nv.updateGLVolume();
  bindControls();
  renderTable();
  drawMip();
  if (state.lesions.length) jump(0);
  window.localize = {nv, state, jump, crosshairLps, suvAt};
  window.localizeReadyMs = performance.now();  // since navigation start
  window.localizeReady = true;
}

main().catch((error) => { $("status").textContent = "error: " + error; console.error(error); });
