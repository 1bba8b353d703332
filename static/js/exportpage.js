/* The Export page: rows still being made follow their progress until ready. (No imports:
 * the page needs one GET.) */

async function api(method, url) {
  const response = await fetch(url, { method, credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) {
    throw new Error("HTTP " + response.status);
  }
  return response.json();
}

const POLL_MS = 1500;

// As Django's filesizeformat writes it, which the page's first render uses.
function fileSize(bytes) {
  if (bytes < 1024) {
    return bytes === 1 ? "1\u00a0byte" : bytes + "\u00a0bytes";
  }
  const units = ["KB", "MB", "GB", "TB", "PB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return value.toFixed(1) + "\u00a0" + units[unit];
}

// The same words the page's first render gives the same state.
function describe(job) {
  if (job.status === "done") {
    return "Ready (" + fileSize(job.size || 0) + ")";
  }
  if (job.status === "failed") {
    return "Failed: " + (job.error || "unknown error");
  }
  return (job.status === "queued" ? "Queued" : "Running") + " – " + job.progress + "%";
}

async function follow(row) {
  let job;
  try {
    job = (await api("GET", "/api/exports/" + row.dataset.export + "/")).export;
  } catch (err) {
    setTimeout(() => follow(row), POLL_MS * 2);
    return;
  }
  row.dataset.status = job.status;
  row.querySelector(".export-state").textContent = describe(job);
  if (job.status === "done" && job.download) {
    const link = document.createElement("a");
    link.href = job.download;
    link.textContent = "Download";
    row.querySelector(".export-link").replaceChildren(link);
  } else if (job.status === "queued" || job.status === "running") {
    setTimeout(() => follow(row), POLL_MS);
  }
}

document.querySelectorAll("#export-list tr[data-export]").forEach((row) => {
  if (row.dataset.status === "queued" || row.dataset.status === "running") {
    follow(row);
  }
});
