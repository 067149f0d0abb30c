// The review page of `cxrlearn serve`: send files to predict?gradcam=true and show,
// per file, the image as the network sees it, its Grad-CAM overlay, the model's label
// and probability. No framework, nothing fetched from elsewhere; text is inserted with
// textContent only (file names come from the user).
"use strict";

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function percent(p) {
  if (p > 0.999) return "> 99.9%";  // never "100%": the model is not certain
  if (p < 0.001) return "< 0.1%";
  return (100 * p).toFixed(1) + "%";
}

function figure(base64, caption, className) {
  const fig = element("figure");
  const img = element("img", className);
  img.alt = caption;
  img.src = "data:image/png;base64," + base64;
  fig.append(img, element("figcaption", "", caption));
  return fig;
}

function render(result) {
  const card = element("article", "result");
  card.append(element("h2", "file", result.file));
  if (result.error) {
    card.classList.add("failed");
    card.append(element("p", "error", "Not analysed (" + result.error.status + "): " +
                        result.error.detail));
    return card;
  }
  if (result.image_png && result.gradcam_png) {
    const images = element("div", "images");
    images.append(figure(result.image_png, "as the network sees it", "input"),
                  figure(result.gradcam_png, "Grad-CAM for " + result.label, "overlay"));
    card.append(images);
  }
  if (result.trained_on) {
    card.append(element("p", "warning", "This film was used to train the model (as it " +
                        "is, or at another size or encoding): its result says nothing " +
                        "about how the model does on new patients."));
  }
  card.append(element("p", "label", String(result.label)));
  card.append(element("p", "detail", "probability " + percent(result.probability)));
  const rule = result.threshold === null
    ? "the most probable class"
    : "threshold " + result.threshold.toFixed(3) + " on " + result.threshold_applies_to;
  card.append(element("p", "detail", "decided by the model at " + rule));
  const others = Object.entries(result.probabilities)
    .map(([name, p]) => name + " " + percent(p)).join(", ");
  card.append(element("p", "detail", "all classes: " + others));
  return card;
}

function setStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

async function send(files) {
  if (!files || files.length === 0) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  setStatus("Analysing " + files.length + " file(s)\u2026");
  let body;
  try {
    const response = await fetch("predict?gradcam=true", {method: "POST", body: form});
    body = await response.json();
  } catch (err) {
    setStatus("The server did not answer: " + err, true);
    return;
  }
  if (!body.results) {
    const error = body.error || {detail: "unexpected answer"};
    setStatus("Refused: " + error.detail + (error.file ? " (" + error.file + ")" : ""),
              true);
    return;
  }
  const results = document.getElementById("results");
  for (const result of body.results.slice().reverse()) {
    results.prepend(render(result));
  }
  const failed = body.results.filter((r) => r.error).length;
  setStatus("Done: " + (body.results.length - failed) + " analysed" +
            (failed ? ", " + failed + " not analysed" : "") + ".", failed > 0);
}

async function describeModel() {
  try {
    const response = await fetch("model");
    const model = await response.json();
    const point = model.operating_point;
    const rule = point.threshold === null
      ? "most probable class"
      : "threshold " + point.threshold.toFixed(3) + " on " + point.applies_to;
    document.getElementById("model").textContent =
      "Model " + model.id + " (" + model.version + "), classes " +
      model.classes.join(" / ") + ", " + rule + ".";
    document.getElementById("limits").textContent =
      "Up to " + model.limits.max_files + " files and " +
      (model.limits.max_upload_bytes / 1048576).toFixed(0) + " MiB per upload.";
  } catch (err) {
    document.getElementById("model").textContent = "Model description unavailable.";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("files");
  const drop = document.getElementById("drop");
  input.addEventListener("change", () => {
    send(Array.from(input.files));
    input.value = "";
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    send(Array.from(event.dataTransfer.files));
  });
  describeModel();
});
