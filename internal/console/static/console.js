// Herald console: live figures over server-sent events, the lint playground, row selection.
// No framework and nothing fetched but the console's own routes.
"use strict";
(function () {
  const body = document.body;

  // setFigure writes a number into every [data-f=name] inside el.
  function setFigure(el, name, value) {
    el.querySelectorAll('[data-f="' + name + '"]').forEach(function (n) { n.textContent = value; });
  }

  // Sparklines keep the last 120 samples per channel.
  const history = {};
  function spark(row, key, value) {
    const h = (history[key] = history[key] || []);
    h.push(value);
    if (h.length > 120) h.shift();
    const line = row.querySelector(".spark polyline");
    if (!line) return;
    const top = Math.max(1, Math.max.apply(null, h));
    line.setAttribute("points", h.map(function (v, i) { return i + "," + (23 - (v / top) * 22).toFixed(1); }).join(" "));
  }

  function onOverview(d) {
    (d.channels || []).forEach(function (c) {
      const row = document.querySelector('[data-channel="' + c.name + '"]');
      if (!row) return;
      setFigure(row, "sends", c.sends);
      const m = row.querySelector("meter");
      if (m) m.value = c.sends;
      spark(row, c.name, c.sends);
    });
    (d.senders || []).forEach(function (s) {
      const row = document.querySelector('[data-sender="' + s.id + '"]');
      if (!row) return;
      setFigure(row, "sends", s.sends);
      const m = row.querySelector("meter");
      if (m) m.value = s.sends;
    });
    (d.lanes || []).forEach(function (l) {
      const row = document.querySelector('[data-lane="' + l.name + '"]');
      if (!row) return;
      setFigure(row, "pending", l.pending);
      setFigure(row, "inflight", l.inflight);
    });
    const dlq = document.getElementById("dlq-size");
    if (dlq && d.dlq_known) dlq.textContent = d.dlq;
    const fh = document.getElementById("failed-hour");
    if (fh && d.dlq_known) fh.textContent = d.failed_hour;
  }

  function onCampaign(row, c) {
    setFigure(row, "percent", c.percent);
    setFigure(row, "done", c.done);
    setFigure(row, "total", c.total);
    setFigure(row, "rate", c.rate.toFixed(1));
    setFigure(row, "eta", c.eta || "–");
    const p = row.querySelector("progress");
    if (p) p.value = c.percent;
    const states = document.getElementById("states");
    if (states && row.id === "campaign") {
      const tb = states.querySelector("tbody");
      Object.keys(c.states || {}).sort().forEach(function (s) {
        let tr = tb.querySelector('[data-state="' + s + '"]');
        if (!tr) {
          tr = document.createElement("tr");
          tr.setAttribute("data-state", s);
          const a = document.createElement("a");
          a.href = "?state=" + encodeURIComponent(s);
          a.textContent = s;
          const td1 = document.createElement("td"), td2 = document.createElement("td");
          td1.appendChild(a);
          td2.setAttribute("data-f", "n");
          tr.append(td1, td2);
          tb.appendChild(tr);
        }
        setFigure(tr, "n", c.states[s]);
      });
      // A state no job is in any more is left out of the counts: it shows 0.
      tb.querySelectorAll("tr[data-state]").forEach(function (tr) {
        if (!(c.states || {})[tr.getAttribute("data-state")]) setFigure(tr, "n", 0);
      });
    }
  }

  // A campaign page's tables are rendered by the server (the recipients are paged there, so
  // a million rows stay fast): when the live figures say jobs moved, the same page is fetched
  // again and its recipients and channels tables replace these, at most once a second.
  const shownDone = document.querySelector('#campaign [data-f="done"]');
  let lastDone = shownDone ? shownDone.textContent : null, refreshing = false, again = false;
  function refreshTables() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        const doc = new DOMParser().parseFromString(html, "text/html");
        ["#recipients tbody", "#channels tbody"].forEach(function (sel) {
          const fresh = doc.querySelector(sel), old = document.querySelector(sel);
          if (fresh && old) old.replaceWith(fresh);
        });
        body.setAttribute("data-tables", String(Date.now()));
      })
      .catch(function () {})
      .finally(function () {
        setTimeout(function () {
          refreshing = false;
          if (again) { again = false; refreshTables(); }
        }, 1000);
      });
  }

  const topic = body.getAttribute("data-stream");
  if (topic && window.EventSource) {
    const es = new EventSource("/console/events?topic=" + encodeURIComponent(topic));
    es.onmessage = function (ev) {
      const d = JSON.parse(ev.data);
      if (topic === "overview") onOverview(d);
      else if (topic === "campaigns") d.forEach(function (c) {
        const row = document.querySelector('tr[data-campaign="' + c.name + '"]');
        if (row) onCampaign(row, c);
      });
      else if (!d.error) {
        onCampaign(document.getElementById("campaign"), d);
        if (document.getElementById("recipients") && String(d.done) !== lastDone) {
          lastDone = String(d.done);
          refreshTables();
        }
      }
      body.setAttribute("data-live", String(Date.now()));
    };
  }

  // Select every row shown of the dead letters.
  const all = document.getElementById("select-all");
  if (all) all.addEventListener("change", function () {
    document.querySelectorAll('#letters input[name="seq"]').forEach(function (b) { b.checked = all.checked; });
  });

  // The lint playground: findings as you type, a quarter second after the last key.
  const input = document.getElementById("lint-input");
  if (input) {
    const out = document.getElementById("lint-findings");
    const csrf = input.closest("[data-csrf]").getAttribute("data-csrf");
    let timer = 0, seq = 0;
    function show(res) {
      out.replaceChildren();
      if (res.error) {
        const p = document.createElement("p");
        p.className = "error";
        p.textContent = res.error;
        out.appendChild(p);
      }
      const fs = res.findings || [];
      if (!res.error && fs.length === 0) {
        const p = document.createElement("p");
        p.className = "flash";
        p.textContent = "No findings.";
        out.appendChild(p);
      }
      fs.forEach(function (f) {
        const div = document.createElement("div");
        div.className = "finding " + f.severity;
        div.setAttribute("data-code", f.code);
        div.textContent = f.severity + " " + f.code + " (" + f.component + (f.span && f.span.text ? ': "' + f.span.text + '"' : "") + "): " + f.reason;
        out.appendChild(div);
      });
    }
    function run() {
      const mine = ++seq;
      fetch("/console/lint", { method: "POST", headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" }, body: input.value, credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (res) { if (mine === seq) show(res); })
        .catch(function (e) { show({ error: String(e) }); });
    }
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 250); });
    run();
  }
})();
