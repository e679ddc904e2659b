/*
 * faststream-c live dashboard: reads this process's /metrics once a second,
 * keeps the last 10 minutes in memory and draws the panels of FastStream's
 * Grafana dashboard (22130) with uPlot. No network beyond this server.
 *
 * Each panel element carries data-points (the number of drawn, non-null
 * points) so that a browser test can tell that every panel drew data.
 */
(function () {
  "use strict";
  var METRICS = document.querySelector('meta[name="fs-metrics-path"]').content || "/metrics";
  var HISTORY = 600;        // snapshots kept (10 minutes at 1 s)
  var WINDOW = 60;          // seconds, for p99 (Grafana: rate(...[1m]))
  var MAX_LINES = 12;       // lines per chart: the largest ones
  var PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
                 "#37872d", "#fade2a", "#c4162a", "#1f60c4", "#8f3bb8", "#96d98d"];

  var history = [];         // [{t, fam: {name: [{labels, value}]}}]
  var prefix = null;
  var charts = {};
  var filters = {app: "", handler: "", destination: ""};

  /* ---------------------------------------------------------------- */
  /* The text exposition format (0.0.4)                                */

  function parseLabels(s) {
    var out = {}, i = 0, n = s.length;
    while (i < n) {
      while (i < n && (s[i] === "," || s[i] === " ")) i++;
      var eq = s.indexOf("=", i);
      if (eq < 0) break;
      var name = s.slice(i, eq).trim();
      i = eq + 2; // skip ="
      var v = "";
      while (i < n && s[i] !== '"') {
        if (s[i] === "\\" && i + 1 < n) {
          var c = s[i + 1];
          v += c === "n" ? "\n" : c;
          i += 2;
        } else {
          v += s[i++];
        }
      }
      i++; // closing quote
      out[name] = v;
    }
    return out;
  }

  function parse(text) {
    var fam = {};
    var lines = text.split("\n");
    for (var k = 0; k < lines.length; k++) {
      var line = lines[k];
      if (!line || line[0] === "#") continue;
      var brace = line.indexOf("{"), name, labels = {}, rest;
      var sp = line.indexOf(" ");
      if (brace >= 0 && brace < sp) {
        name = line.slice(0, brace);
        var close = line.lastIndexOf("}");
        labels = parseLabels(line.slice(brace + 1, close));
        rest = line.slice(close + 1).trim();
      } else {
        name = line.slice(0, sp);
        rest = line.slice(sp + 1).trim();
      }
      var value = parseFloat(rest.split(" ")[0]);
      (fam[name] || (fam[name] = [])).push({labels: labels, value: value});
    }
    return fam;
  }

  function detectPrefix(fam) {
    var names = Object.keys(fam).sort();
    for (var i = 0; i < names.length; i++) {
      var m = /^(.*)_received_messages_total$/.exec(names[i]);
      if (m && fam[names[i]].some(function (s) { return "handler" in s.labels; })) return m[1];
    }
    for (i = 0; i < names.length; i++) {
      m = /^(.*)_published_messages_total$/.exec(names[i]);
      if (m) return m[1];
    }
    return null;
  }

  /* ---------------------------------------------------------------- */
  /* Selection and aggregation                                         */

  function keep(labels) {
    if (filters.app && labels.app_name !== filters.app) return false;
    if (filters.handler && "handler" in labels && labels.handler !== filters.handler) return false;
    if (filters.destination && "destination" in labels && labels.destination !== filters.destination)
      return false;
    return true;
  }

  function series(snap, suffix) {
    return (snap.fam[prefix + suffix] || []).filter(function (s) { return keep(s.labels); });
  }

  // {key: value} summed over the series of a family, keyed by key(labels).
  function sumBy(snap, suffix, key) {
    var out = {};
    series(snap, suffix).forEach(function (s) {
      var k = key(s.labels);
      if (k !== null) out[k] = (out[k] || 0) + s.value;
    });
    return out;
  }

  function total(snap, suffix) {
    return series(snap, suffix).reduce(function (a, s) { return a + s.value; }, 0);
  }

  function by(label) { return function (l) { return l[label] || ""; }; }

  // Cumulative histogram buckets of a family summed per key: {key: {le: count}}.
  function bucketsBy(snap, suffix, key) {
    var out = {};
    series(snap, suffix + "_bucket").forEach(function (s) {
      var k = key(s.labels), le = s.labels.le;
      var b = out[k] || (out[k] = {});
      b[le] = (b[le] || 0) + s.value;
    });
    return out;
  }

  // Prometheus' histogram_quantile on bucket increases {le: delta}.
  function quantile(q, deltas) {
    var les = Object.keys(deltas).map(function (le) {
      return {le: le === "+Inf" ? Infinity : parseFloat(le), c: deltas[le]};
    }).sort(function (a, b) { return a.le - b.le; });
    if (!les.length) return null;
    var totalCount = les[les.length - 1].c;
    if (!(totalCount > 0)) return null;
    var rank = q * totalCount, prevLe = 0, prevC = 0;
    for (var i = 0; i < les.length; i++) {
      if (les[i].c >= rank) {
        if (les[i].le === Infinity) return i > 0 ? les[i - 1].le : null;
        var inBucket = les[i].c - prevC;
        var lower = i === 0 && les[i].le > 0 ? 0 : prevLe;
        return inBucket > 0 ? lower + (les[i].le - lower) * (rank - prevC) / inBucket : les[i].le;
      }
      prevLe = les[i].le;
      prevC = les[i].c;
    }
    return null;
  }

  function snapshotAgo(i, seconds) {
    var t = history[i].t - seconds;
    for (var j = i; j > 0; j--) if (history[j - 1].t <= t) return j - 1;
    return 0;
  }

  /* ---------------------------------------------------------------- */
  /* Panels: each returns {key: value} for the snapshot at index i     */

  function rateBy(suffix, key) {
    return function (i) {
      if (i === 0) return {};
      var a = sumBy(history[i - 1], suffix, key), b = sumBy(history[i], suffix, key);
      var dt = history[i].t - history[i - 1].t, out = {};
      Object.keys(b).forEach(function (k) {
        var d = b[k] - (a[k] || 0);
        out[k] = (d < 0 ? b[k] : d) / dt; // a reset counts from 0
      });
      return out;
    };
  }

  function gaugeBy(suffix, key) {
    return function (i) { return sumBy(history[i], suffix, key); };
  }

  function averageBy(suffix, label) {
    return function (i) {
      var s = sumBy(history[i], suffix + "_sum", by(label));
      var c = sumBy(history[i], suffix + "_count", by(label)), out = {};
      Object.keys(s).forEach(function (k) { if (c[k] > 0) out[k] = s[k] / c[k]; });
      return out;
    };
  }

  function p99By(suffix, label) {
    return function (i) {
      var j = snapshotAgo(i, WINDOW);
      if (j === i) return {};
      var b = bucketsBy(history[i], suffix, by(label));
      var a = bucketsBy(history[j], suffix, by(label)), out = {};
      Object.keys(b).forEach(function (k) {
        var d = {};
        Object.keys(b[k]).forEach(function (le) { d[le] = b[k][le] - ((a[k] || {})[le] || 0); });
        var v = quantile(0.99, d);
        if (v !== null) out[k] = v;
      });
      return out;
    };
  }

  function ratioBy(statuses) {
    return function (i) {
      var all = sumBy(history[i], "_received_processed_messages_total", by("handler"));
      var part = sumBy(history[i], "_received_processed_messages_total", function (l) {
        return statuses.indexOf(l.status) >= 0 ? l.handler : null;
      });
      var out = {};
      Object.keys(all).forEach(function (k) { if (all[k] > 0) out[k] = (part[k] || 0) / all[k]; });
      return out;
    };
  }

  var TILES = [
    ["Total messages published", "_published_messages_total"],
    ["Total messages received", "_received_messages_total"],
    ["Total messages processed", "_received_processed_messages_total"],
    ["Publish exceptions", "_published_messages_exceptions_total"],
    ["Process exceptions", "_received_processed_messages_exceptions_total"],
    ["Messages in progress", "_received_messages_in_process"],
  ];

  var PANELS = [
    {id: "process-rate", title: "Processed per sec, by status", unit: "/s",
     fn: rateBy("_received_processed_messages_total", by("status"))},
    {id: "publish-rate", title: "Published per sec, by status", unit: "/s",
     fn: rateBy("_published_messages_total", by("status"))},
    {id: "process-exceptions", title: "Process exceptions per sec, by type", unit: "/s",
     fn: rateBy("_received_processed_messages_exceptions_total", by("exception_type"))},
    {id: "publish-exceptions", title: "Publish exceptions per sec, by type", unit: "/s",
     fn: rateBy("_published_messages_exceptions_total", by("exception_type"))},
    {id: "in-process", title: "Messages in process, by handler", unit: "",
     fn: gaugeBy("_received_messages_in_process", by("handler"))},
    {id: "process-avg", title: "Process average duration, by handler", unit: "s",
     fn: averageBy("_received_processed_messages_duration_seconds", "handler")},
    {id: "process-p99", title: "Process duration p99, by handler", unit: "s",
     fn: p99By("_received_processed_messages_duration_seconds", "handler")},
    {id: "publish-avg", title: "Publish average duration, by destination", unit: "s",
     fn: averageBy("_published_messages_duration_seconds", "destination")},
    {id: "publish-p99", title: "Publish duration p99, by destination", unit: "s",
     fn: p99By("_published_messages_duration_seconds", "destination")},
    {id: "size-p99", title: "Received message size p99, by handler", unit: "B",
     fn: p99By("_received_messages_size_bytes", "handler")},
    {id: "acked-ratio", title: "Acked messages, share by handler", unit: "%",
     fn: ratioBy(["acked"])},
    {id: "error-ratio", title: "Error messages, share by handler", unit: "%",
     fn: ratioBy(["error"])},
    {id: "other-ratio", title: "Nacked, rejected, skipped messages, share by handler", unit: "%",
     fn: ratioBy(["nacked", "rejected", "skipped"])},
    {id: "backlog", title: "Backlog (messages waiting), by handler", unit: "", optional: true,
     family: "_received_messages_backlog",
     fn: gaugeBy("_received_messages_backlog", by("handler"))},
  ];

  /* ---------------------------------------------------------------- */
  /* Drawing                                                           */

  function fmt(v, unit) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    if (unit === "%") return (v * 100).toFixed(1) + "%";
    if (unit === "s") return v < 1 ? (v * 1000).toFixed(v < 0.01 ? 2 : 1) + " ms" : v.toFixed(2) + " s";
    var a = Math.abs(v);
    var s = a >= 1e6 ? (v / 1e6).toFixed(2) + "M" : a >= 1e4 ? (v / 1e3).toFixed(1) + "k"
          : a >= 100 || v === Math.round(v) ? v.toFixed(0) : v.toFixed(2);
    return s + (unit === "B" ? " B" : unit === "/s" ? "/s" : "");
  }

  function el(tag, cls, parent) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (parent) parent.appendChild(e);
    return e;
  }

  function drawTiles() {
    var box = document.getElementById("tiles"), last = history[history.length - 1];
    if (!box.childNodes.length)
      TILES.forEach(function (t) {
        var d = el("div", "tile", box);
        d.id = "tile" + t[1];
        el("div", "v", d);
        el("div", "t", d).textContent = t[0];
      });
    TILES.forEach(function (t) {
      var d = document.getElementById("tile" + t[1]);
      var v = total(last, t[1]);
      d.firstChild.textContent = fmt(v, "");
      d.setAttribute("data-points", String(last.fam[prefix + t[1]] ? 1 : 0));
    });
  }

  function drawPanel(p) {
    var box = document.getElementById("charts");
    var panel = document.getElementById("panel-" + p.id);
    if (!panel) {
      panel = el("div", "panel", box);
      panel.id = "panel-" + p.id;
      el("h2", null, panel).textContent = p.title;
      el("div", "body", panel);
    }
    var body = panel.lastChild;
    if (p.optional && !history.some(function (s) { return s.fam[prefix + p.family]; })) {
      panel.setAttribute("data-optional", "absent");
      panel.setAttribute("data-points", "0");
      body.innerHTML = '<div class="empty">not exported (opt-in: fs_prometheus_options.backlog)</div>';
      return;
    }
    panel.removeAttribute("data-optional");
    var rows = history.map(function (s, i) { return p.fn(i); });
    var keys = {};
    rows.forEach(function (r) { Object.keys(r).forEach(function (k) { keys[k] = Math.max(keys[k] || 0, Math.abs(r[k])); }); });
    var names = Object.keys(keys).sort(function (a, b) { return keys[b] - keys[a]; }).slice(0, MAX_LINES).sort();
    var xs = history.map(function (s) { return s.t; });
    var data = [xs], points = 0;
    names.forEach(function (k) {
      data.push(rows.map(function (r) {
        var v = r[k];
        if (v === undefined) return null;
        points++;
        return v;
      }));
    });
    panel.setAttribute("data-points", String(points));
    panel.setAttribute("data-series", String(names.length));
    if (!names.length) {
      if (charts[p.id]) { charts[p.id].u.destroy(); delete charts[p.id]; }
      body.innerHTML = '<div class="empty">no data yet</div>';
      return;
    }
    var sig = names.join("\u0001");
    var c = charts[p.id];
    if (!c || c.sig !== sig) {
      if (c) c.u.destroy();
      body.innerHTML = "";
      var opts = {
        width: Math.max(300, body.clientWidth || 500), height: 200,
        legend: {show: true},
        scales: {x: {time: true}},
        axes: [{stroke: "#8e8e8e", grid: {stroke: "#2c3235"}},
               {stroke: "#8e8e8e", grid: {stroke: "#2c3235"}, size: 78,
                values: function (u, vals) { return vals.map(function (v) { return fmt(v, p.unit); }); }}],
        series: [{}].concat(names.map(function (k, i) {
          return {label: k || "(none)", stroke: PALETTE[i % PALETTE.length], width: 1.5,
                  value: function (u, v) { return fmt(v, p.unit); }, spanGaps: true};
        })),
      };
      c = charts[p.id] = {sig: sig, u: new uPlot(opts, data, body)};
    } else {
      c.u.setData(data);
    }
  }

  function fillSelect(id, values) {
    var s = document.getElementById(id), have = {};
    for (var i = 0; i < s.options.length; i++) have[s.options[i].value] = true;
    values.sort().forEach(function (v) {
      if (!have[v]) {
        var o = el("option", null, s);
        o.value = o.textContent = v;
      }
    });
  }

  function labelValues(snap, label) {
    var out = {};
    Object.keys(snap.fam).forEach(function (n) {
      if (n.indexOf(prefix + "_") !== 0) return;
      snap.fam[n].forEach(function (s) { if (s.labels[label] !== undefined) out[s.labels[label]] = 1; });
    });
    return Object.keys(out);
  }

  function draw() {
    if (!history.length || !prefix) return;
    var last = history[history.length - 1];
    fillSelect("f-app", labelValues(last, "app_name"));
    fillSelect("f-handler", labelValues(last, "handler"));
    fillSelect("f-destination", labelValues(last, "destination"));
    drawTiles();
    PANELS.forEach(drawPanel);
  }

  /* ---------------------------------------------------------------- */
  /* The loop                                                          */

  var statusEl = document.getElementById("status");

  function tick() {
    fetch(METRICS, {headers: {Accept: "text/plain;version=0.0.4"}, cache: "no-store"})
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (text) {
        var fam = parse(text);
        prefix = prefix || detectPrefix(fam);
        history.push({t: Date.now() / 1000, fam: fam});
        if (history.length > HISTORY) history.shift();
        document.getElementById("prefix").textContent = prefix ? prefix + "_*" : "(no FastStream metrics yet)";
        statusEl.textContent = "updated " + new Date().toLocaleTimeString();
        statusEl.className = "status";
        draw();
      })
      .catch(function (e) {
        statusEl.textContent = "cannot read " + METRICS + ": " + e.message;
        statusEl.className = "status err";
      })
      .then(function () { setTimeout(tick, 1000); });
  }

  ["app", "handler", "destination"].forEach(function (f) {
    document.getElementById("f-" + f).addEventListener("change", function (e) {
      filters[f] = e.target.value;
      draw();
    });
  });
  document.getElementById("src").textContent = METRICS;
  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (id) {
      var body = document.getElementById("panel-" + id).lastChild;
      charts[id].u.setSize({width: Math.max(300, body.clientWidth), height: 200});
    });
  });
  tick();
})();
