// The seismograph phone page: accelerometer -> magnitude -> POST /events on the gateway.
// Same event as the DAIS 2023 page: {magnitude, time, device}, at most one per 200 ms.
"use strict";

const MIN_GAP_MS = 200; // an event only when more than this has passed since the last one
const BATCH_SIZE = 5; // post as soon as this many are waiting...
const FLUSH_MS = 1000; // ...or at least once a second
const QUEUE_LIMIT = 50; // kept while the gateway is unreachable; the oldest go first
const SPINNER = ["[*    ]", "[ *   ]", "[  *  ]", "[   * ]", "[    *]"];

const deviceId = makeDeviceId();
const button = document.getElementById("toggle");
const card = document.getElementById("card");
const magnitudeText = document.getElementById("magnitude");
const spinnerText = document.getElementById("spinner");
const statusText = document.getElementById("status");

let running = false;
let lastSent = 0;
let frame = 0;
let queue = [];
let posting = false;
let accepted = 0;
let flushTimer = null;

// `client-` + 12 hex digits: 6 from the clock, 6 random; made once per page load.
function makeDeviceId() {
  const clock = Date.now().toString(16).slice(-6);
  const random = Math.floor(Math.random() * 0x1000000).toString(16).padStart(6, "0");
  return "client-" + clock + random;
}

// Acceleration without gravity, as the original; a missing axis counts as 0.
function magnitudeOf(event) {
  const a = event.acceleration || {};
  const x = a.x || 0;
  const y = a.y || 0;
  const z = a.z || 0;
  return Math.round(Math.sqrt(x * x + y * y + z * z));
}

function colourOf(magnitude) {
  if (magnitude <= 2) return "green";
  if (magnitude <= 8) return "yellow";
  return "red";
}

function show(magnitude) {
  magnitudeText.textContent = String(magnitude);
  card.className = "card " + colourOf(magnitude);
  frame = (frame + 1) % SPINNER.length;
  spinnerText.textContent = SPINNER[frame];
}

function setStatus(text) {
  statusText.textContent = text;
}

function onMotion(event) {
  const now = Date.now();
  if (now - lastSent <= MIN_GAP_MS) return;
  lastSent = now;
  const magnitude = magnitudeOf(event);
  show(magnitude);
  queue.push({ magnitude: magnitude, time: new Date(now).toISOString(), device: deviceId });
  if (queue.length >= BATCH_SIZE) flush();
}

async function flush() {
  if (posting || queue.length === 0) return;
  posting = true;
  const batch = queue.splice(0, BATCH_SIZE);
  let delivered = false;
  try {
    const response = await fetch("events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(batch),
      keepalive: true,
    });
    const reply = await response.json().catch(() => ({}));
    if (response.status >= 500) throw new Error(reply.error || "HTTP " + response.status);
    accepted += reply.accepted || 0;
    const refused = reply.rejected && reply.rejected.length ? reply.rejected[0].error : "";
    setStatus(accepted + " events sent" + (refused ? " - refused: " + refused : ""));
    delivered = true;
  } catch (error) {
    // Keep the events for the next try; only the newest QUEUE_LIMIT survive a long outage.
    queue = batch.concat(queue).slice(-QUEUE_LIMIT);
    setStatus("gateway unreachable, retrying (" + error.message + ")");
  } finally {
    posting = false;
  }
  // After STOP, or with a backlog, keep posting until the queue is empty.
  if (delivered && (queue.length >= BATCH_SIZE || (!running && queue.length))) flush();
}

async function start() {
  if (typeof DeviceMotionEvent === "undefined") {
    const hint = window.isSecureContext ? "" : " Open the page over HTTPS.";
    setStatus("This browser gives no motion events." + hint);
    return;
  }
  if (typeof DeviceMotionEvent.requestPermission === "function") {
    try {
      if ((await DeviceMotionEvent.requestPermission()) !== "granted") {
        setStatus("Motion permission was denied.");
        return;
      }
    } catch (error) {
      setStatus("Motion permission failed: " + error.message);
      return;
    }
  }
  window.addEventListener("devicemotion", onMotion);
  flushTimer = setInterval(flush, FLUSH_MS);
  running = true;
  button.textContent = "STOP";
  button.classList.add("running");
  setStatus("Listening to the accelerometer...");
}

function stop() {
  window.removeEventListener("devicemotion", onMotion);
  clearInterval(flushTimer);
  running = false;
  button.textContent = "START";
  button.classList.remove("running");
  flush();
}

document.getElementById("device").textContent = deviceId;
button.addEventListener("click", () => (running ? stop() : start()));
window.addEventListener("pagehide", flush);
