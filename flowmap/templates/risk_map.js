// flowmap risk map: drill-down panel, trace view, findings filters.
// Every value comes from trace files and is attacker-controlled: it is only ever
// inserted with textContent / attribute setters, never parsed as HTML.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("flowmap-data").textContent);
  var KINDS = ["switched", "dropped", "orphaned", "inherited"];
  var PANEL_FINDINGS = 25;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "class") e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      });
    }
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  // a value written beside others is isolated (U+2068 ... U+2069): two right-to-left names
  // either side of a separator would otherwise be drawn in reverse order
  function iso(v) { return "\u2068" + v + "\u2069"; }
  function fmt(n) { return Number(n).toLocaleString("en-US"); }

  // Keyboard users land where a link leads: the panel it filled, the trace row it opened.
  // (Replacing the panel removes the button that had the focus, which would drop it on <body>.)
  function focusOn(target) {
    if (!target) return;
    if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
    target.focus();
  }
  function plural(n, w) { return fmt(n) + " " + w + (n === 1 ? "" : "s"); }

  // ---------- map selection and panel ----------
  var svg = document.getElementById("map");
  var panelBody = document.getElementById("panel-body");
  var panelEmpty = document.getElementById("panel-empty");

  function clearSelection() {
    if (!svg) return;
    svg.classList.remove("focus");
    svg.querySelectorAll(".hl, .selected").forEach(function (n) { n.classList.remove("hl", "selected"); });
    panelBody.hidden = true;
    panelEmpty.hidden = false;
  }

  function highlight(nodeIds, edgeIds, selected) {
    svg.classList.add("focus");
    svg.querySelectorAll(".hl, .selected").forEach(function (n) { n.classList.remove("hl", "selected"); });
    nodeIds.forEach(function (id) { var n = document.getElementById("node-" + id); if (n) n.classList.add("hl"); });
    edgeIds.forEach(function (id) {
      var e = document.getElementById("edge-" + id);
      if (e) e.classList.add("hl");
      svg.querySelectorAll('.count[data-edge="' + id + '"]').forEach(function (c) { c.classList.add("hl"); });
    });
    if (selected) { selected.classList.add("selected"); reveal(selected); }
  }

  // scroll the map so the selected element is in view (the map is often wider than the screen)
  function reveal(g) {
    var sc = document.getElementById("map-scroll");
    if (sc.classList.contains("fit")) return;
    var b = g.getBBox();
    var x = b.x, y = b.y;
    var t = g.transform && g.transform.baseVal && g.transform.baseVal.consolidate();
    if (t) { x += t.matrix.e; y += t.matrix.f; }
    if (x < sc.scrollLeft || x + b.width > sc.scrollLeft + sc.clientWidth) {
      sc.scrollLeft = Math.max(0, x + Math.min(b.width, sc.clientWidth) / 2 - sc.clientWidth / 2);
    }
    if (y < sc.scrollTop || y + b.height > sc.scrollTop + sc.clientHeight) {
      sc.scrollTop = Math.max(0, y + Math.min(b.height, sc.clientHeight) / 2 - sc.clientHeight / 2);
    }
  }

  function countPills(obj) {
    var row = el("div", { class: "count-row" });
    KINDS.forEach(function (k) {
      if (obj[k]) row.appendChild(el("span", { class: "count-pill " + k }, fmt(obj[k]) + " " + k));
    });
    if (obj.viaLink) row.appendChild(el("span", { class: "count-pill via-link" }, fmt(obj.viaLink) + " via span links"));
    return row;
  }

  function traceButton(tid, spanId) {
    if (DATA.traces[tid]) {
      var b = el("button", { type: "button", class: "link open-trace", "data-trace": tid }, tid);
      if (spanId) b.setAttribute("data-span", spanId);
      return b;
    }
    var c = el("code", { class: "muted", title: "not among the sample traces kept in this report" }, tid + " (not sampled)");
    return c;
  }

  function findingsList(list, total) {
    var frag = document.createDocumentFragment();
    frag.appendChild(el("h4", null, "Findings (" + fmt(total) + ")"));
    if (!list.length) { frag.appendChild(el("p", { class: "muted" }, total ? "Not in the findings table (capped)." : "None.")); return frag; }
    var ul = el("ul", { class: "panel-findings" });
    list.slice(0, PANEL_FINDINGS).forEach(function (f) {
      var li = el("li");
      li.appendChild(el("span", { class: "sev-chip sev-" + f.severity }, f.severity));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("code", null, f.rule));
      li.appendChild(el("div", null, f.message));
      li.appendChild(traceButton(f.trace, f.span));
      ul.appendChild(li);
    });
    frag.appendChild(ul);
    if (list.length > PANEL_FINDINGS) frag.appendChild(el("p", { class: "muted small" }, "and " + fmt(list.length - PANEL_FINDINGS) + " more in the findings table below."));
    return frag;
  }

  function examplesList(ids) {
    var frag = document.createDocumentFragment();
    frag.appendChild(el("h4", null, "Example traces"));
    if (!ids.length) { frag.appendChild(el("p", { class: "muted" }, "None kept.")); return frag; }
    var ul = el("ul", { class: "panel-examples" });
    ids.forEach(function (t) { var li = el("li"); li.appendChild(traceButton(t)); ul.appendChild(li); });
    frag.appendChild(ul);
    return frag;
  }

  function showPanel(children) {
    panelBody.textContent = "";
    children.forEach(function (c) { panelBody.appendChild(c); });
    panelBody.hidden = false;
    panelEmpty.hidden = true;
  }

  function selectNode(id) {
    var n = DATA.nodes[id];
    if (!n) return;
    var edgeIds = n["in"].concat(n.out);
    var nodeIds = [id];
    edgeIds.forEach(function (eid) { var e = DATA.edges[eid]; nodeIds.push(e.source, e.target); });
    highlight(nodeIds, edgeIds, document.getElementById("node-" + id));
    var head = el("div", { id: "panel-node", "data-id": id, tabindex: "-1" });
    head.appendChild(el("h3", null, n.name));
    var kv = el("dl", { class: "kv" });
    [["service", n.service], ["boundary", n.boundary || "none"], ["spans", fmt(n.spans)],
     ["without tenant", fmt(n.untagged)], ["entry point", n.entry ? "yes" : "no"]].forEach(function (p) {
      kv.appendChild(el("dt", null, p[0])); kv.appendChild(el("dd", null, p[1]));
    });
    if (n.selfLoops) { kv.appendChild(el("dt", null, "calls itself")); kv.appendChild(el("dd", null, fmt(n.selfLoops))); }
    head.appendChild(kv);
    var byRule = el("div", { class: "count-row" });
    Object.keys(n.findings).forEach(function (r) { byRule.appendChild(el("span", { class: "tag", title: DATA.rules[r] || "" }, r + " × " + fmt(n.findings[r]))); });
    head.appendChild(byRule);
    var total = 0; Object.keys(n.findings).forEach(function (r) { total += n.findings[r]; });
    var list = DATA.findings.filter(function (f) { return f.node === id; });
    var calls = el("div");
    [["Called from", n["in"], "source", "sourceOp"], ["Calls", n.out, "target", "targetOp"]].forEach(function (spec) {
      if (!spec[1].length) return;
      calls.appendChild(el("h4", null, spec[0]));
      var ul = el("ul");
      spec[1].forEach(function (eid) {
        var e = DATA.edges[eid];
        var li = el("li");
        var b = el("button", { type: "button", class: "link", "data-edge": eid }, e[spec[3]]);
        b.addEventListener("click", function () { selectEdge(eid); focusOn(document.getElementById("panel-edge")); });
        li.appendChild(b);
        li.appendChild(el("span", { class: "count-pill " + e.kind, style: "margin-left:6px" }, e.kind === "inherited" ? fmt(e.total) : fmt(e[e.kind]) + " " + e.kind));
        ul.appendChild(li);
      });
      calls.appendChild(ul);
    });
    showPanel([head, findingsList(list, Math.max(total, list.length)), examplesList(n.examples), calls]);
  }

  function selectEdge(id) {
    var e = DATA.edges[id];
    if (!e) return;
    highlight([e.source, e.target], [id], document.getElementById("edge-" + id));
    var head = el("div", { id: "panel-edge", "data-id": id, tabindex: "-1" });
    head.appendChild(el("h3", null, e.sourceOp));
    head.appendChild(el("div", { class: "muted" }, "calls"));
    head.appendChild(el("h3", null, e.targetOp));
    head.appendChild(el("p", null, plural(e.total, "call") + "; what happened to the tenant context:"));
    head.appendChild(countPills(e));
    if (e.orphaned) head.appendChild(el("p", { class: "muted small" }, "Orphaned: the callee started as a root span without a tenant; this operation is its most likely parent."));
    var list = DATA.findings.filter(function (f) { return f.edge === id; });
    showPanel([head, findingsList(list, list.length), examplesList(e.examples)]);
  }

  if (svg) {
    svg.addEventListener("click", function (ev) {
      var g = ev.target.closest(".node, .edge");
      if (!g) { clearSelection(); return; }
      if (g.classList.contains("node")) selectNode(g.getAttribute("data-id"));
      else selectEdge(g.getAttribute("data-id"));
    });
    svg.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter" && ev.key !== " ") return;
      var g = ev.target.closest(".node, .edge");
      if (!g) return;
      ev.preventDefault();
      if (g.classList.contains("node")) selectNode(g.getAttribute("data-id"));
      else selectEdge(g.getAttribute("data-id"));
    });
  }
  document.getElementById("clear-selection").addEventListener("click", clearSelection);
  var fit = document.getElementById("fit-toggle");
  fit.addEventListener("click", function () {
    var scroll = document.getElementById("map-scroll");
    var on = scroll.classList.toggle("fit");
    fit.setAttribute("aria-pressed", on ? "true" : "false");
  });

  // ---------- trace view ----------
  var traceSection = document.getElementById("trace-section");
  var traceView = document.getElementById("trace-view");
  var pathOnly = document.getElementById("trace-path-only");

  function tenantChip(s) {
    if (!s.tenant) return el("span", { class: "tenant-chip none", title: "no tenant tag" }, "no tenant");
    var c = el("span", { class: "tenant-chip", title: "opaque tenant tag" + (s.source ? " (from " + s.source + ")" : "") }, s.tenant);
    if (s.tenant_hue !== null) {
      c.style.color = "hsl(" + s.tenant_hue + ",70%,30%)";
      c.style.background = "hsl(" + s.tenant_hue + ",80%,95%)";
      c.style.borderColor = "hsl(" + s.tenant_hue + ",60%,70%)";
    }
    return c;
  }

  function openTrace(tid, focusSpan) {
    var t = DATA.traces[tid];
    if (!t) return;
    traceSection.hidden = false;
    document.getElementById("trace-id").textContent = tid;
    var summary = document.getElementById("trace-summary");
    var broken = t.spans.filter(function (s) { return s.span_id === t.first_broken; })[0];
    if (broken) {
      summary.textContent = "First broken edge: " + (t.break_rule || broken.broken || "broken") + " at " + iso(broken.service) + " · " + iso(broken.name);
      summary.className = "trace-summary broken";
    } else {
      summary.textContent = t.notice ? "No broken edge among the spans shown." : "No broken edge in this trace.";
      summary.className = "trace-summary";
    }
    var notice = document.getElementById("trace-notice");
    notice.textContent = t.notice || "";
    notice.hidden = !t.notice;
    traceView.textContent = "";
    var head = el("div", { class: "wf-row head", role: "row" });
    ["operation", "tenant tag", "boundary", "findings", "timeline (" + t.duration_ms + " ms)"].forEach(function (h) { head.appendChild(el("div", { role: "columnheader" }, h)); });
    traceView.appendChild(head);
    var total = t.duration_ms || 1;
    var focusRow = null;
    t.spans.forEach(function (s) {
      var cls = "wf-row";
      if (s.on_path) cls += " on-path";
      if (s.broken) cls += " broken";
      if (s.span_id === t.first_broken) cls += " first-broken";
      var row = el("div", { class: cls, role: "row", "data-span": s.span_id, tabindex: "0", "aria-expanded": "false" });
      var name = el("div", { class: "wf-name", title: iso(s.service) + " · " + iso(s.name) });
      name.appendChild(el("span", { class: "wf-indent", style: "width:" + Math.min(s.depth, 30) * 14 + "px" }));
      name.appendChild(el("span", null, s.name));
      name.appendChild(el("span", { class: "wf-svc" }, s.service));
      row.appendChild(name);
      var ten = el("div"); ten.appendChild(tenantChip(s)); row.appendChild(ten);
      var b = el("div"); if (s.boundary) b.appendChild(el("span", { class: "tag" }, s.boundary));
      if (s.scoped === false) b.appendChild(el("span", { class: "rule-chip", title: "flowmap.scoped=false" }, "unscoped"));
      row.appendChild(b);
      var rules = el("div"); s.rules.forEach(function (r) { rules.appendChild(el("span", { class: "rule-chip", title: DATA.rules[r] || "" }, r)); }); row.appendChild(rules);
      var bar = el("div", { class: "wf-bar-cell" });
      var left = Math.max(0, Math.min(100, s.start_ms / total * 100));
      var width = Math.max(0.3, Math.min(100 - left, s.duration_ms / total * 100));
      bar.appendChild(el("div", { class: "wf-bar", style: "left:" + left.toFixed(2) + "%;width:" + width.toFixed(2) + "%", title: s.duration_ms + " ms" }));
      row.appendChild(bar);
      row.addEventListener("click", function () { toggleAttrs(row, s); });
      traceView.appendChild(row);
      if (focusSpan && s.span_id === focusSpan) focusRow = row;
    });
    applyPathOnly();
    traceSection.scrollIntoView({ block: "start" });
    var target = focusRow || traceView.querySelector(".first-broken");
    if (target && target.classList.contains("path-hidden")) target = null;
    focusOn(target || document.getElementById("trace-heading"));
  }

  function toggleAttrs(row, s) {
    var next = row.nextSibling;
    if (next && next.classList && next.classList.contains("wf-attrs")) {
      next.remove();
      row.setAttribute("aria-expanded", "false");
      return;
    }
    var box = el("div", { class: "wf-attrs", role: "row", id: "attrs-" + s.span_id });
    var cell = el("div", { role: "cell" });
    var tbl = el("table");
    [["span id", s.span_id], ["kind", s.kind], ["tenant source", s.source || ""]].concat(s.attributes).forEach(function (kv) {
      var tr = el("tr"); tr.appendChild(el("td", { class: "muted" }, kv[0])); tr.appendChild(el("td", null, kv[1])); tbl.appendChild(tr);
    });
    cell.appendChild(tbl);
    box.appendChild(cell);
    row.parentNode.insertBefore(box, row.nextSibling);
    row.setAttribute("aria-expanded", "true");
    row.setAttribute("aria-controls", box.id);
  }

  // the next (step 1) or previous (-1) row still shown, for the arrow keys
  function siblingRow(row, step) {
    var rows = Array.prototype.filter.call(traceView.querySelectorAll(".wf-row[data-span]"), function (r) {
      return !r.classList.contains("path-hidden");
    });
    return rows[rows.indexOf(row) + step] || null;
  }

  traceView.addEventListener("keydown", function (ev) {
    var row = ev.target;
    if (!row.matches || !row.matches(".wf-row[data-span]")) return;
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); row.click(); }
    else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      var to = siblingRow(row, ev.key === "ArrowDown" ? 1 : -1);
      if (to) to.focus();
    }
  });

  function applyPathOnly() {
    var tid = document.getElementById("trace-id").textContent;
    var t = DATA.traces[tid];
    var only = pathOnly.checked && t && t.path.length;
    traceView.querySelectorAll(".wf-row[data-span]").forEach(function (r) {
      r.classList.toggle("path-hidden", !!only && !r.classList.contains("on-path"));
    });
  }
  pathOnly.addEventListener("change", applyPathOnly);
  var opener = null;  // the button that opened the trace: focus goes back to it on close
  document.getElementById("trace-close").addEventListener("click", function () {
    traceSection.hidden = true;
    focusOn(opener && opener.isConnected ? opener : panelBody.hidden ? panelEmpty : panelBody.firstChild);
  });

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button.open-trace");
    if (!b) return;
    opener = b;
    openTrace(b.getAttribute("data-trace"), b.getAttribute("data-span"));
  });

  // ---------- findings table: filters and sorting ----------
  var table = document.getElementById("findings");
  var fRule = document.getElementById("filter-rule");
  var fSev = document.getElementById("filter-severity");
  var fSvc = document.getElementById("filter-service");
  var countEl = document.getElementById("findings-count");

  function applyFilters() {
    if (!table) return;
    var rule = fRule.value, sev = fSev.value, svc = fSvc.value, shown = 0;
    var rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = (!rule || r.getAttribute("data-rule") === rule) &&
               (!sev || r.getAttribute("data-severity") === sev) &&
               (!svc || r.getAttribute("data-service") === svc);
      r.hidden = !ok;
      if (ok) shown++;
    }
    countEl.textContent = shown + " of " + rows.length + " shown";
  }
  [fRule, fSev, fSvc].forEach(function (s) { s.addEventListener("change", applyFilters); });

  if (table) {
    table.querySelectorAll("button.sort").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var key = btn.getAttribute("data-key");
        var num = btn.getAttribute("data-type") === "num";
        var dir = btn.classList.contains("desc") ? 1 : btn.classList.contains("asc") ? -1 : (num ? -1 : 1);
        table.querySelectorAll("button.sort").forEach(function (b) { b.classList.remove("asc", "desc"); });
        btn.classList.add(dir === 1 ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.getAttribute("data-" + key), y = b.getAttribute("data-" + key);
          var c = num ? Number(x) - Number(y) : x.localeCompare(y);
          if (c === 0) c = Number(a.getAttribute("data-index")) - Number(b.getAttribute("data-index"));
          return c * dir;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  applyFilters();
})();
