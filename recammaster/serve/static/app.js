// The trial page: the form at "/", one job at "/j/<id>". Plain JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
let chosenVideo = null; // a File (from the input or a drop) or the example clip as a File

// The service's errors are {"detail": "message"}; FastAPI's own form checks give a list of {msg}.
function errorMessage(response, body) {
  const detail = Array.isArray(body.detail) ? body.detail.map((item) => item.msg).join("; ") : body.detail;
  return detail || `${response.status} ${response.statusText}`;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(errorMessage(response, body));
  return body;
}

function showError(box, message) {
  box.textContent = message;
  box.hidden = !message;
}

// ---------------------------------------------------------------- the form

async function startForm() {
  const form = $("submit-form");
  form.hidden = false;
  const config = await getJSON("/api/config");
  const limits = config.limits;
  $("limits-text").textContent =
    `At least ${limits.num_frames} frames, up to ${limits.max_duration_s} s and ${limits.max_upload_mb} MB. ` +
    `Files are deleted ${limits.retention_hours} hours after the result is made.`;
  $("caption").maxLength = limits.max_caption_chars;
  $("email-step").hidden = !config.email;
  buildPresets(config.presets);

  $("video").addEventListener("change", () => chooseVideo($("video").files[0] || null));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) chooseVideo(event.dataTransfer.files[0]);
  });
  $("use-example").addEventListener("click", async () => {
    const blob = await (await fetch("/api/example")).blob();
    chooseVideo(new File([blob], "example.mp4", { type: "video/mp4" }));
    $("caption").value = config.example_caption;
  });
  $("trajectory").addEventListener("change", () => {
    if ($("trajectory").files.length) {
      document.querySelectorAll("input[name=preset]").forEach((radio) => { radio.checked = false; });
    }
  });
  form.addEventListener("submit", submit);
}

function chooseVideo(file) {
  chosenVideo = file;
  const preview = $("video-preview");
  if (!file) { preview.hidden = true; $("drop-text").textContent = "Choose or drop an MP4, MOV or WebM video"; return; }
  $("drop-text").textContent = file.name;
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  preview.play().catch(() => {});
}

function buildPresets(presets) {
  const box = $("presets");
  presets.forEach((preset, index) => {
    const label = document.createElement("label");
    label.className = "preset";
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "preset";
    radio.value = preset.name;
    radio.checked = index === 0;
    radio.addEventListener("change", () => { $("trajectory").value = ""; });
    const image = document.createElement("img");
    image.src = preset.preview;
    image.alt = `Preview of ${preset.name}`;
    image.loading = "lazy";
    image.width = 160;
    image.height = 120;
    const name = document.createElement("strong");
    name.textContent = `${preset.number}. ${preset.name}`;
    const description = document.createElement("span");
    description.textContent = preset.description;
    label.append(radio, image, name, description);
    box.append(label);
  });
}

async function submit(event) {
  event.preventDefault();
  const error = $("form-error");
  showError(error, "");
  const preset = document.querySelector("input[name=preset]:checked");
  const trajectory = $("trajectory").files[0];
  if (!chosenVideo) return showError(error, "Choose a video first (or try the example clip).");
  if (!$("caption").value.trim()) return showError(error, "Write a caption: what does the video show?");
  if (!preset && !trajectory) return showError(error, "Pick a camera path.");
  const data = new FormData();
  data.append("video", chosenVideo, chosenVideo.name);
  data.append("caption", $("caption").value);
  if (trajectory) data.append("trajectory", trajectory, trajectory.name);
  else data.append("preset", preset.value);
  if (!$("email-step").hidden && $("email").value.trim()) data.append("email", $("email").value.trim());
  const button = $("submit");
  button.disabled = true;
  button.textContent = "Uploading…";
  try {
    const response = await fetch("/api/jobs", { method: "POST", body: data });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(errorMessage(response, body));
    window.location.assign(body.url);
  } catch (failure) {
    showError(error, failure.message);
    button.disabled = false;
    button.textContent = "Re-film my video";
  }
}

// ---------------------------------------------------------------- one job

async function startJob(jobId) {
  $("job").hidden = false;
  $("copy-link").addEventListener("click", async () => {
    await navigator.clipboard.writeText(window.location.href).catch(() => {});
    $("copy-link").textContent = "Copied";
  });
  let delay = 1000;
  for (;;) {
    let job;
    try {
      job = await getJSON(`/api/jobs/${jobId}`);
    } catch (failure) {
      $("job-title").textContent = "Not found";
      $("job-waiting").hidden = true;
      return showError($("job-error"), failure.message);
    }
    showJob(job);
    if (job.state === "done" || job.state === "failed") return;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 1.2, 4000);
  }
}

function showJob(job) {
  $("job-summary").textContent = `${job.source_name} along ${job.trajectory}: “${job.caption}”`;
  const titles = { queued: "Waiting in the queue", running: "Re-filming", done: "Done", failed: "It did not work" };
  $("job-title").textContent = titles[job.state];
  document.title = `${titles[job.state]} · ReCamMaster`;
  $("job-position").textContent = job.state === "queued"
    ? (job.position === 1 ? "Your video is next." : `Your video is number ${job.position} in the queue.`) : "";
  $("job-progress").value = job.progress;
  $("job-stage").textContent = job.stage + (job.email ? " · you will get an e-mail when it is ready" : "");
  if (job.state === "failed") {
    $("job-waiting").hidden = true;
    showError($("job-error"), job.error);
  }
  if (job.state === "done") {
    $("job-waiting").hidden = true;
    $("job-result").hidden = false;
    $("result-caption").textContent = `Re-filmed along ${job.trajectory}`;
    $("source-player").src = job.files.source;
    $("result-player").src = job.files.result;
    $("download-result").href = `${job.files.result}?download=1`;
    $("download-pair").href = `${job.files.side_by_side}?download=1`;
    $("play-both").onclick = playBoth;
  }
}

function playBoth() {
  const players = [$("source-player"), $("result-player")];
  const playing = players.some((player) => !player.paused);
  players.forEach((player) => {
    if (playing) { player.pause(); return; }
    player.currentTime = 0;
    player.play().catch(() => {});
  });
  $("play-both").textContent = playing ? "Play both" : "Pause";
}

// ---------------------------------------------------------------- start

const match = window.location.pathname.match(/^\/j\/([A-Za-z0-9_-]+)$/);
if (match) startJob(match[1]);
else startForm().catch((failure) => showError($("form-error"), failure.message));
