package controlapi

import (
	"embed"
	"net/http"
)

//go:embed page
var pageFiles embed.FS

// registerPage serves the approvals page: static files only. The page
// calls the JSON API with the approver's bearer token, which it keeps in
// the tab's sessionStorage; no cookie is ever set, so no other site can
// act with it.
func registerPage(mux *http.ServeMux) {
	serve := func(name, contentType string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			b, err := pageFiles.ReadFile("page/" + name)
			if err != nil {
				http.NotFound(w, nil)
				return
			}
			h := w.Header()
			h.Set("Content-Type", contentType)
			h.Set("Cache-Control", "no-store")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
			_, _ = w.Write(b)
		}
	}
	index := serve("index.html", "text/html; charset=utf-8")
	mux.HandleFunc("GET /approvals", index)
	mux.HandleFunc("GET /approvals/{id}", index)
	mux.HandleFunc("GET /approvals/assets/app.js", serve("app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /approvals/assets/app.css", serve("app.css", "text/css; charset=utf-8"))
}
