// The approvals page: lists approvals and resolves one, calling the admin
// JSON API with the approver's bearer token. The token lives in this tab's
// sessionStorage only. Every value from the server is set as text, never
// parsed as HTML: arguments and reasons come from callers.
(function () {
  "use strict";

  var TOKEN_KEY = "verdict.approvals.token";
  var REFRESH_MS = 10000;
  var NOTE_MAX_BYTES = 1024;
  var STATUSES = ["pending", "approved", "denied", "consumed", "expired", "all"];

  var refreshTimer = null;
  var current = null; // the approval the detail view shows
  var busy = false;

  function $(id) { return document.getElementById(id); }

  function el(tag, text, cls) {
    var n = document.createElement(tag);
    if (text !== undefined && text !== null) { n.textContent = String(text); }
    if (cls) { n.className = cls; }
    return n;
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  }

  function show(id, on) { $(id).hidden = !on; }

  // Token storage: sessionStorage only.
  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }
  function setToken(t) {
    try {
      if (t) { sessionStorage.setItem(TOKEN_KEY, t); } else { sessionStorage.removeItem(TOKEN_KEY); }
    } catch (e) { /* storage disabled: the page cannot sign in */ }
  }

  // Errors.
  function showError(err) {
    var box = $("error");
    clear(box);
    if (!err) { box.hidden = true; return; }
    var line = el("p");
    if (err.code) {
      line.appendChild(el("code", err.code));
      line.appendChild(document.createTextNode(": "));
    }
    line.appendChild(document.createTextNode(err.message || "Something went wrong."));
    box.appendChild(line);
    // The server repeats a lone reason as the message; show it once.
    var reasons = (err.reasons || []).filter(function (r) {
      return !(r && r.code === err.code && r.message === err.message);
    });
    if (reasons.length) {
      var ul = el("ul");
      reasons.forEach(function (r) {
        var li = el("li");
        if (r && r.code) {
          li.appendChild(el("code", r.code));
          li.appendChild(document.createTextNode(": "));
        }
        li.appendChild(document.createTextNode((r && r.message) || ""));
        ul.appendChild(li);
      });
      box.appendChild(ul);
    }
    box.hidden = false;
  }

  function ApiError(status, code, message, reasons) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.reasons = reasons || [];
  }

  // api calls the JSON API and resolves with the decoded body, or rejects
  // with an ApiError carrying the server's code and message.
  function api(method, path, body) {
    var headers = { "Authorization": "Bearer " + token(), "Accept": "application/json" };
    var init = { method: method, headers: headers, credentials: "omit", cache: "no-store", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (resp.ok && data) { return data; }
        var e = data && data.error;
        if (e && typeof e === "object") {
          throw new ApiError(resp.status, String(e.code || ""), String(e.message || ""), Array.isArray(e.reasons) ? e.reasons : []);
        }
        throw new ApiError(resp.status, "http." + resp.status, "The server answered " + resp.status + " " + resp.statusText + ".");
      });
    }, function () {
      throw new ApiError(0, "network", "The server could not be reached.");
    });
  }

  function failed(err) {
    if (!(err instanceof ApiError)) { err = new ApiError(0, "page", String(err && err.message || err)); }
    showError(err);
    if (err.status === 401) { signedOut(false); }
  }

  // Formatting.
  function when(iso) {
    if (!iso) { return ""; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    return d.toLocaleString();
  }

  function timeNode(iso) {
    var t = el("time", when(iso));
    if (iso) { t.setAttribute("datetime", String(iso)); }
    return t;
  }

  // preview is a call's arguments on one line, cut short, for the list.
  function preview(args) {
    if (args === undefined || args === null) { return ""; }
    var s = JSON.stringify(args);
    return s.length > 80 ? s.slice(0, 79) + "\u2026" : s;
  }

  // subjectOf reads the token's sub claim to say who is signed in. It is
  // display only: the server verifies the token on every call.
  function subjectOf(t) {
    try {
      var part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var json = decodeURIComponent(Array.prototype.map.call(atob(part), function (c) {
        return "%" + ("0" + c.charCodeAt(0).toString(16)).slice(-2);
      }).join(""));
      var sub = JSON.parse(json).sub;
      return typeof sub === "string" ? sub : "";
    } catch (e) { return ""; }
  }

  function statusBadge(status) {
    var s = String(status || "");
    return el("span", s, "badge badge-" + (STATUSES.indexOf(s) >= 0 ? s : "other"));
  }

  // Routing: /approvals is the list, /approvals/<id> one approval.
  function route() {
    var path = location.pathname.replace(/\/+$/, "");
    var m = /^\/approvals\/([^/]+)$/.exec(path);
    if (m) {
      var id;
      try { id = decodeURIComponent(m[1]); } catch (e) { id = m[1]; }
      return { view: "detail", id: id };
    }
    return { view: "list" };
  }

  function stopRefresh() {
    if (refreshTimer !== null) { clearInterval(refreshTimer); refreshTimer = null; }
  }

  function signedOut(clearError) {
    stopRefresh();
    setToken("");
    current = null;
    if (clearError) { showError(null); }
    show("session", false);
    show("list", false);
    show("detail", false);
    show("signin", true);
    $("token").value = "";
    $("token").focus();
  }

  function start() {
    if (!token()) { signedOut(false); return; }
    show("signin", false);
    var sub = subjectOf(token());
    $("who").textContent = sub ? "Signed in as " + sub : "Signed in";
    show("session", true);
    var r = route();
    if (r.view === "detail") {
      show("list", false);
      loadDetail(r.id);
    } else {
      show("detail", false);
      loadList();
      stopRefresh();
      refreshTimer = setInterval(function () {
        if (document.visibilityState === "visible") { loadList(); }
      }, REFRESH_MS);
    }
  }

  // List view.
  function loadList() {
    var status = $("status-filter").value;
    var path = "/v1/approvals" + (status && status !== "all" ? "?status=" + encodeURIComponent(status) : "");
    return api("GET", path).then(function (data) {
      showError(null);
      renderList(Array.isArray(data.approvals) ? data.approvals : [], status);
    }, failed);
  }

  function renderList(list, status) {
    var body = $("approvals-body");
    clear(body);
    list.forEach(function (a) {
      var tr = el("tr");
      var link = el("a", a.subject || "(no subject)");
      link.href = "/approvals/" + encodeURIComponent(a.id);
      link.setAttribute("aria-label", "Approval " + a.id + " for " + (a.subject || "") + ": " + (a.server || "") + "/" + (a.target || ""));
      var subj = el("td");
      subj.appendChild(link);
      tr.appendChild(subj);
      var tgt = el("td");
      tgt.appendChild(el("span", a.server || "", "server"));
      tgt.appendChild(document.createTextNode(" / "));
      tgt.appendChild(el("span", a.target || "", "target"));
      tr.appendChild(tgt);
      tr.appendChild(el("td", a.method || ""));
      var args = el("td", null, "args");
      args.appendChild(el("code", preview(a.arguments)));
      tr.appendChild(args);
      tr.appendChild(el("td", a.reason || "", "reason"));
      var st = el("td");
      st.appendChild(statusBadge(a.status));
      tr.appendChild(st);
      var c = el("td");
      c.appendChild(timeNode(a.created_at));
      tr.appendChild(c);
      var x = el("td");
      x.appendChild(timeNode(a.expires_at));
      tr.appendChild(x);
      body.appendChild(tr);
    });
    var empty = $("list-empty");
    empty.textContent = status === "all" || !status ? "No approvals" : "No " + status + " approvals";
    empty.hidden = list.length > 0;
    $("approvals").hidden = list.length === 0;
    show("list", true);
    $("list-updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
  }

  // Detail view.
  function loadDetail(id) {
    return api("GET", "/v1/approvals/" + encodeURIComponent(id)).then(function (data) {
      showError(null);
      renderDetail(data.approval);
    }, failed);
  }

  var FIELDS = [
    ["id", "ID"],
    ["subject", "Subject"],
    ["subject_roles", "Subject roles"],
    ["subject_groups", "Subject groups"],
    ["server", "Server"],
    ["method", "Method"],
    ["target", "Target"],
    ["reason", "Reason"],
    ["created_at", "Created", "time"],
    ["expires_at", "Expires", "time"],
    ["arguments_sha256", "Arguments SHA-256", "code"],
    ["revision", "Policy revision", "code"],
    ["decision_id", "Decision ID", "code"],
    ["resolved_by", "Resolved by"],
    ["resolved_at", "Resolved", "time"],
    ["note", "Note"],
    ["consumed_by", "Consumed by decision", "code"],
    ["consumed_at", "Consumed", "time"]
  ];

  function renderDetail(a) {
    if (!a || typeof a !== "object") {
      showError(new ApiError(0, "page", "The server's answer holds no approval."));
      return;
    }
    current = a;
    $("detail-title").textContent = "Approval for " + (a.subject || "?") + ": " + (a.server || "") + "/" + (a.target || "");
    var st = $("status");
    st.textContent = String(a.status || "");
    st.className = "badge badge-" + (STATUSES.indexOf(a.status) >= 0 ? a.status : "other");

    var dl = $("fields");
    clear(dl);
    FIELDS.forEach(function (f) {
      var v = a[f[0]];
      if (v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0)) { return; }
      var dt = el("dt", f[1]);
      var dd = el("dd");
      dd.id = "field-" + f[0];
      if (f[2] === "time") {
        dd.appendChild(timeNode(v));
      } else if (f[2] === "code") {
        dd.appendChild(el("code", v));
      } else if (Array.isArray(v)) {
        dd.textContent = v.join(", ");
      } else {
        dd.textContent = String(v);
      }
      dl.appendChild(dt);
      dl.appendChild(dd);
    });

    var args = a.arguments;
    $("arguments").textContent = args === undefined || args === null ? "(none)" : JSON.stringify(args, null, 2);

    var pending = a.status === "pending";
    $("resolve").hidden = !pending;
    $("approve").disabled = !pending;
    $("deny").disabled = !pending;
    show("detail", true);
  }

  function resolve(approve) {
    if (!current || busy) { return; }
    var note = $("note").value;
    // The server bounds notes in UTF-8 bytes; maxlength counts characters.
    if (new TextEncoder().encode(note).length > NOTE_MAX_BYTES) {
      showError(new ApiError(0, "note.invalid", "The note is longer than " + NOTE_MAX_BYTES + " bytes; shorten it."));
      $("note").focus();
      return;
    }
    busy = true;
    $("approve").disabled = true;
    $("deny").disabled = true;
    var body = note ? { note: note } : {};
    api("POST", "/v1/approvals/" + encodeURIComponent(current.id) + (approve ? "/approve" : "/deny"), body)
      .then(function (data) {
        showError(null);
        $("note").value = "";
        renderDetail(data.approval);
      }, function (err) {
        failed(err);
        if (current && current.status === "pending") {
          $("approve").disabled = false;
          $("deny").disabled = false;
        }
      })
      .then(function () { busy = false; });
  }

  function init() {
    var params = new URLSearchParams(location.search);
    var s = params.get("status");
    if (s && STATUSES.indexOf(s) >= 0) { $("status-filter").value = s; }

    $("signin-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var t = $("token").value.trim().replace(/^Bearer\s+/i, "");
      $("token").value = "";
      if (!t) { return; }
      setToken(t);
      showError(null);
      start();
    });
    $("sign-out").addEventListener("click", function () { signedOut(true); });
    $("status-filter").addEventListener("change", function () {
      var v = $("status-filter").value;
      history.replaceState(null, "", "/approvals" + (v === "pending" ? "" : "?status=" + encodeURIComponent(v)));
      loadList();
    });
    $("refresh").addEventListener("click", function () { loadList(); });
    $("resolve").addEventListener("submit", function (ev) { ev.preventDefault(); });
    $("approve").addEventListener("click", function () { resolve(true); });
    $("deny").addEventListener("click", function () { resolve(false); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && refreshTimer !== null) { loadList(); }
    });
    start();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
