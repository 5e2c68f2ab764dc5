// The latent-space explorer (vaepipe.explorer writes the data): the decoder runs here, in plain JavaScript,
// over the weights in window.EXPLORER_MODEL; window.EXPLORER_IMAGES holds the test images and labels.
"use strict";
(function () {
  const MODEL = window.EXPLORER_MODEL, IMAGES = window.EXPLORER_IMAGES;
  const SIDE = 28, PIXELS = SIDE * SIDE, MAP_MARGIN = 10, HOVER_RADIUS = 8;
  // matplotlib's tab10, as the pipeline's latent-map figures colour the classes.
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  function bytes(base64) {
    const text = atob(base64), out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }
  const floats = (base64) => new Float32Array(bytes(base64).buffer);  // little-endian, as every browser's CPU

  const weights = floats(MODEL.weights);
  const D = MODEL.latentDim, C = MODEL.classes, N = IMAGES.count;
  const codes = floats(MODEL.codes), mapPoints = floats(MODEL.map), labels = bytes(IMAGES.labels);
  const mean = floats(MODEL.mean), axes = floats(MODEL.axes), scales = floats(MODEL.scales);
  const $ = (id) => document.getElementById(id);

  // ---- The decoder: each layer takes and returns a flat Float32Array ----
  const LAYERS = {
    relu(x) {
      for (let i = 0; i < x.length; i++) if (x[i] < 0) x[i] = 0;
      return x;
    },
    linear(x, layer) {  // weight [out, in], then bias [out]
      const n = layer.in, out = new Float32Array(layer.out), bias = layer.offset + n * layer.out;
      for (let o = 0; o < layer.out; o++) {
        const row = layer.offset + o * n;
        let sum = weights[bias + o];
        for (let i = 0; i < n; i++) sum += weights[row + i] * x[i];
        out[o] = sum;
      }
      return out;
    },
    conv_transpose(x, layer) {  // weight [in, out, k, k], then bias [out]; each input pixel scatters a k x k patch
      const { in: cin, out: cout, side, out_side: outSide, kernel: k, stride, padding } = layer;
      const area = outSide * outSide, bias = layer.offset + cin * cout * k * k;
      const sums = new Float64Array(cout * area);
      for (let co = 0; co < cout; co++) sums.fill(weights[bias + co], co * area, (co + 1) * area);
      for (let ci = 0; ci < cin; ci++) {
        for (let iy = 0; iy < side; iy++) {
          for (let ix = 0; ix < side; ix++) {
            const v = x[(ci * side + iy) * side + ix];
            if (v === 0) continue;  // most are, after a ReLU
            for (let ky = 0; ky < k; ky++) {
              const oy = iy * stride - padding + ky;
              if (oy < 0 || oy >= outSide) continue;
              for (let kx = 0; kx < k; kx++) {
                const ox = ix * stride - padding + kx;
                if (ox < 0 || ox >= outSide) continue;
                const w = layer.offset + (ci * cout * k + ky) * k + kx, o = oy * outSide + ox;
                for (let co = 0; co < cout; co++) sums[co * area + o] += v * weights[w + co * k * k];
              }
            }
          }
        }
      }
      return Float32Array.from(sums);
    },
  };

  // Pixel probabilities of p(x | z) (p(x | z, y) for a conditional model, `labelWeights` a one-hot label or a mix).
  function decode(z, labelWeights) {
    let x = new Float32Array(D + C);
    x.set(z);
    if (C) x.set(labelWeights, D);
    for (const layer of MODEL.program) x = LAYERS[layer.op](x, layer);
    for (let i = 0; i < PIXELS; i++) x[i] = 1 / (1 + Math.exp(-x[i]));
    return x;
  }
  const oneHot = (label) => { const v = new Float32Array(C); v[label] = 1; return v; };

  function drawDigit(canvas, probs) {
    const ctx = canvas.getContext("2d"), image = ctx.createImageData(SIDE, SIDE);
    for (let i = 0; i < PIXELS; i++) {
      const grey = Math.round(probs[i] * 255);
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = grey;
      image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }
  function digitCanvas(title) {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = SIDE;
    canvas.className = "digit small";
    canvas.title = title;
    return canvas;
  }

  // ---- State: the current z and label, the walk's ends ----
  const state = { z: new Float32Array(D), label: 0, selected: -1, walk: [0, Math.min(1, N - 1)], redrawMs: [] };
  const codeOf = (i) => codes.slice(i * D, (i + 1) * D);

  // ---- Header ----
  document.title = `${MODEL.title} · latent-space explorer`;
  for (const [name, value] of [...MODEL.facts, ["weights sha256", MODEL.sha256.slice(0, 16)]]) {
    const item = document.createElement("div");
    item.append(Object.assign(document.createElement("dt"), { textContent: name }),
                Object.assign(document.createElement("dd"), { textContent: value }));
    $("facts").append(item);
  }
  for (const [file, title] of MODEL.pages) {
    const link = Object.assign(document.createElement("a"), { href: file, textContent: title });
    if (location.pathname.endsWith("/" + file)) link.removeAttribute("href");
    $("pages").append(link);
  }

  // ---- The map of the test codes ----
  const mapCanvas = $("map"), mapCtx = mapCanvas.getContext("2d");
  const screen = new Float32Array(2 * N);  // each point's position on the map canvas
  {
    let [minX, maxX, minY, maxY] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < N; i++) {
      minX = Math.min(minX, mapPoints[2 * i]); maxX = Math.max(maxX, mapPoints[2 * i]);
      minY = Math.min(minY, mapPoints[2 * i + 1]); maxY = Math.max(maxY, mapPoints[2 * i + 1]);
    }
    const w = mapCanvas.width - 2 * MAP_MARGIN, h = mapCanvas.height - 2 * MAP_MARGIN;
    for (let i = 0; i < N; i++) {
      screen[2 * i] = MAP_MARGIN + (mapPoints[2 * i] - minX) / (maxX - minX || 1) * w;
      screen[2 * i + 1] = MAP_MARGIN + h - (mapPoints[2 * i + 1] - minY) / (maxY - minY || 1) * h;
    }
  }
  $("map-method").textContent = `(${MODEL.mapMethod}, coloured by label)`;
  MODEL.classNames.forEach((name, c) => {
    const entry = Object.assign(document.createElement("span"), { textContent: name });
    entry.style.setProperty("--colour", PALETTE[c % PALETTE.length]);
    $("legend").append(entry);
  });

  function ring(i, colour, text) {
    if (i < 0) return;
    const [x, y] = [screen[2 * i], screen[2 * i + 1]];
    mapCtx.strokeStyle = colour;
    mapCtx.lineWidth = 2;
    mapCtx.beginPath();
    mapCtx.arc(x, y, 6, 0, 2 * Math.PI);
    mapCtx.stroke();
    if (text) {
      mapCtx.fillStyle = colour;
      mapCtx.font = "bold 13px sans-serif";
      mapCtx.fillText(text, x + 7, y - 7);
    }
  }
  function drawMap() {
    mapCtx.fillStyle = "#fff";
    mapCtx.fillRect(0, 0, mapCanvas.width, mapCanvas.height);
    for (let c = 0; c < MODEL.classNames.length; c++) {  // one colour at a time: 10 style changes, not N
      mapCtx.fillStyle = PALETTE[c % PALETTE.length];
      for (let i = 0; i < N; i++) if (labels[i] === c) mapCtx.fillRect(screen[2 * i] - 1, screen[2 * i + 1] - 1, 2, 2);
    }
    ring(state.walk[0], "#000", "A");
    ring(state.walk[1], "#000", "B");
    ring(state.selected, "#e00", "");
  }
  function pointAt(event) {
    const box = mapCanvas.getBoundingClientRect();
    const x = (event.clientX - box.left) * mapCanvas.width / box.width;
    const y = (event.clientY - box.top) * mapCanvas.height / box.height;
    let best = -1, bestDistance = HOVER_RADIUS * HOVER_RADIUS;
    for (let i = 0; i < N; i++) {
      const d = (screen[2 * i] - x) ** 2 + (screen[2 * i + 1] - y) ** 2;
      if (d <= bestDistance) { best = i; bestDistance = d; }
    }
    return best;
  }

  // ---- The test images, for the hover preview ----
  const sprite = new Image();
  sprite.src = IMAGES.sprite;
  const spriteReady = sprite.decode();
  function showImage(i) {
    const ctx = $("preview").getContext("2d");
    ctx.drawImage(sprite, (i % IMAGES.columns) * SIDE, Math.floor(i / IMAGES.columns) * SIDE, SIDE, SIDE,
                  0, 0, SIDE, SIDE);
    $("preview-caption").textContent = `test image ${i}: ${MODEL.classNames[labels[i]]}`;
  }

  // ---- Sliders along the principal directions ----
  const directions = scales.length;
  const coefficient = (d) => {
    let sum = 0;
    for (let j = 0; j < D; j++) sum += (state.z[j] - mean[j]) * axes[d * D + j];
    return sum;
  };
  const sliders = [];
  for (let d = 0; d < directions; d++) {
    const row = Object.assign(document.createElement("label"), { className: "slider" });
    const input = Object.assign(document.createElement("input"), {
      type: "range", min: -MODEL.sliderRange, max: MODEL.sliderRange, step: 0.01, value: 0 });
    input.setAttribute("aria-label", `principal direction ${d + 1}`);
    const output = document.createElement("output");
    row.append(`direction ${d + 1}`, input, output);
    $("sliders").append(row);
    input.addEventListener("input", () => {
      const start = performance.now();
      const change = Number(input.value) * scales[d] - coefficient(d);  // the directions are orthonormal:
      for (let j = 0; j < D; j++) state.z[j] += change * axes[d * D + j];  // the other coefficients stay
      output.value = Number(input.value).toFixed(2);
      redraw(start);
    });
    sliders.push([input, output]);
  }
  function syncSliders() {
    sliders.forEach(([input, output], d) => {
      input.value = coefficient(d) / scales[d];
      output.value = (coefficient(d) / scales[d]).toFixed(2);
    });
  }

  // ---- A conditional model: the label, and the current z as every class ----
  const classRow = [];
  if (C) {
    $("conditional").hidden = false;
    MODEL.classNames.forEach((name, c) => {
      $("label").append(Object.assign(document.createElement("option"), { value: c, textContent: name }));
      const canvas = digitCanvas(name);
      canvas.addEventListener("click", () => setLabel(c));
      const figure = document.createElement("figure");
      figure.append(canvas, Object.assign(document.createElement("figcaption"), { textContent: name }));
      $("class-row").append(figure);
      classRow.push(canvas);
    });
    $("label").addEventListener("change", () => setLabel(Number($("label").value)));
  }
  const setLabel = (label) => setCurrent(state.z, label);

  // Decode the current z onto the page; `start` is when the user's input arrived (performance.now()).
  function redraw(start) {
    drawDigit($("decoded"), decode(state.z, C ? oneHot(state.label) : null));
    classRow.forEach((canvas, c) => drawDigit(canvas, decode(state.z, oneHot(c))));
    const ms = performance.now() - start;
    state.redrawMs.push(ms);
    $("redraw").textContent = `redrawn in ${ms.toFixed(1)} ms`;
  }

  function setCurrent(z, label) {
    state.z = z;
    if (C) {
      state.label = label;
      $("label").value = String(label);
    }
    syncSliders();
    redraw(performance.now());
  }
  function select(i) {
    state.selected = i;
    setCurrent(codeOf(i), labels[i]);
    drawMap();
  }

  // ---- The walk: `frames` codes from the start image's to the end image's, linear or spherical ----
  function walkFrames() {
    const [a, b] = state.walk.map(codeOf), frames = MODEL.frames;
    const spherical = document.querySelector("input[name=walk]:checked").value === "spherical";
    let dot = 0, na = 0, nb = 0;
    for (let j = 0; j < D; j++) { dot += a[j] * b[j]; na += a[j] * a[j]; nb += b[j] * b[j]; }
    const omega = Math.acos(Math.max(-1, Math.min(1, dot / Math.sqrt(na * nb || 1))));
    const path = [];
    for (let f = 0; f < frames; f++) {
      const t = f / (frames - 1);
      // Spherical: along the great circle between the two codes (Shoemake's slerp; White 2016 for latent spaces).
      const [wa, wb] = spherical && Math.sin(omega) > 1e-6
        ? [Math.sin((1 - t) * omega) / Math.sin(omega), Math.sin(t * omega) / Math.sin(omega)] : [1 - t, t];
      const z = new Float32Array(D);
      for (let j = 0; j < D; j++) z[j] = wa * a[j] + wb * b[j];
      // A conditional model's label moves from the start image's to the end image's along with z.
      const labelWeights = new Float32Array(C);
      if (C) { labelWeights[labels[state.walk[0]]] += 1 - t; labelWeights[labels[state.walk[1]]] += t; }
      path.push([z, labelWeights]);
    }
    return path;
  }
  function drawWalk() {
    const strip = $("strip");
    strip.replaceChildren();
    walkFrames().forEach(([z, labelWeights], f) => {
      const canvas = digitCanvas(`frame ${f + 1}`);
      drawDigit(canvas, decode(z, labelWeights));
      canvas.addEventListener("click", () => setCurrent(z.slice(), labelWeights.indexOf(Math.max(...labelWeights))));
      strip.append(canvas);
    });
    const [a, b] = state.walk;
    $("walk-ends").textContent = `A: test image ${a} (${MODEL.classNames[labels[a]]}), ` +
      `B: test image ${b} (${MODEL.classNames[labels[b]]}), ${MODEL.frames} frames`;
  }
  for (const radio of document.querySelectorAll("input[name=walk]")) radio.addEventListener("change", drawWalk);

  // ---- Mouse on the map ----
  mapCanvas.addEventListener("mousemove", (event) => {
    const i = pointAt(event);
    if (i >= 0) showImage(i);
  });
  function setWalkEnd(end, i) {
    state.walk[end] = i;
    drawWalk();
    drawMap();
  }
  mapCanvas.addEventListener("click", (event) => {
    const i = pointAt(event);
    if (i < 0) return;
    if (event.shiftKey) setWalkEnd(0, i);
    else if (event.altKey || event.ctrlKey) setWalkEnd(1, i);
    else select(i);
  });
  $("walk-start").addEventListener("click", () => setWalkEnd(0, state.selected));
  $("walk-end").addEventListener("click", () => setWalkEnd(1, state.selected));

  select(0);
  drawWalk();

  // For the browser tests and the console: read and set what the page shows.
  window.explorer = {
    ready: spriteReady,
    decode: (z, label) => Array.from(decode(Float32Array.from(z), C ? oneHot(label) : null)),
    get z() { return Array.from(state.z); },
    get label() { return state.label; },
    get redrawMs() { return state.redrawMs.slice(); },
    setZ(z) { setCurrent(Float32Array.from(z), state.label); },
    pointOnScreen(i) {
      const box = mapCanvas.getBoundingClientRect();
      return [box.left + screen[2 * i] * box.width / mapCanvas.width,
              box.top + screen[2 * i + 1] * box.height / mapCanvas.height];
    },
  };
})();
