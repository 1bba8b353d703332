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

function describe(job) {
  if (job.status === "done") {
    return "Ready";
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
