// Live updates without reloading: the jobs table polls the session's job list, and a job page
// re-fetches its body while the job is not finished. Plain fetch + DOM, no library.
(function () {
  "use strict";
  const pollMs = Number(document.body.dataset.pollMs || 1000);

  function statusCell(status) {
    const span = document.createElement("span");
    span.className = "status status-" + status;
    span.dataset.role = "status";
    span.textContent = status;
    return span;
  }

  function newRow(table, job) {
    const admin = table.tHead.rows[0].cells.length > 7;
    const row = document.createElement("tr");
    row.dataset.jobId = job.id;
    const link = document.createElement("a");
    link.href = table.dataset.source.replace(/\/api\/jobs$/, "/jobs/") + job.id;
    link.textContent = job.id;
    const cells = [link];
    if (admin) cells.push(job.team_id);
    cells.push(statusCell(job.status), job.model, job.method, job.rho_policy.type, "0",
               job.created_at.replace("T", " ").slice(0, 16) + " UTC");
    cells.forEach(function (value, i) {
      const td = document.createElement("td");
      if (typeof value === "string") td.textContent = value; else td.appendChild(value);
      if (i === cells.length - 2) td.dataset.role = "epochs";
      row.appendChild(td);
    });
    return row;
  }

  function pollJobs(table) {
    fetch(table.dataset.source, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (body) {
        const tbody = table.tBodies[0];
        body.data.slice().reverse().forEach(function (job) {
          let row = tbody.querySelector('tr[data-job-id="' + job.id + '"]');
          if (!row) {
            const empty = tbody.querySelector("tr.empty");
            if (empty) empty.remove();
            row = newRow(table, job);
            tbody.insertBefore(row, tbody.firstChild);
          }
          const status = row.querySelector('[data-role="status"]');
          if (status.textContent !== job.status) status.replaceWith(statusCell(job.status));
          const epochs = row.querySelector('[data-role="epochs"]');
          const done = job.last_finished_epoch === null ? 0 : job.last_finished_epoch + 1;
          if (epochs) epochs.textContent = String(done);
        });
      })
      .catch(function () { /* a failed poll is retried on the next tick */ })
      .finally(function () { setTimeout(function () { pollJobs(table); }, pollMs); });
  }

  // A running job's page asks for the job (one small JSON) and re-draws only when the job's
  // updated_at moves (a status change or a new epoch).
  function pollJob(holder) {
    const head = holder.querySelector(".job-head");
    if (head && head.dataset.terminal === "true") return;
    setTimeout(function () {
      fetch(holder.dataset.source, {credentials: "same-origin", headers: {Accept: "application/json"}})
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (job) {
          if (job.updated_at === holder.dataset.updatedAt) return null;
          return fetch(holder.dataset.fragment, {credentials: "same-origin"})
            .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
            .then(function (html) { holder.innerHTML = html; holder.dataset.updatedAt = job.updated_at; });
        })
        .catch(function () {})
        .finally(function () { pollJob(holder); });
    }, pollMs);
  }

  function policyFields(select) {
    function show() {
      document.querySelectorAll("label[data-policy]").forEach(function (label) {
        label.hidden = label.dataset.policy !== select.value;
      });
    }
    select.addEventListener("change", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    const table = document.getElementById("jobs-table");
    if (table) pollJobs(table);
    const holder = document.getElementById("job-body");
    if (holder) pollJob(holder);
    const grid = document.getElementById("grid-now");
    if (grid) {
      fetch(grid.dataset.fragment, {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { grid.innerHTML = html; })
        .catch(function (status) { grid.querySelector(".note").textContent = "Grid data unavailable (" + status + ")."; });
    }
    const rhoType = document.getElementById("rho_type");
    if (rhoType) policyFields(rhoType);
  });
})();
