// Package console is the operator's web page of a floe cluster, served by every node's
// HTTP port at / (and its files under /console/). It is plain HTML, CSS and a little
// JavaScript, embedded in the binary: no build step, no CDN, it works offline. The
// page holds no data of its own: it asks the node's /v1 API every two seconds
// (/v1/cluster, /v1/nodes, /v1/topics and each topic's state, /v1/archive/summary),
// which stays the source of truth.
//
// It is read-only unless the operator gives it a token: then it sends the token as a
// Bearer token (the nodes' --auth-file decides what it may do) and offers the admin
// actions (transfer leadership, remove a member, recover a segment, sweep the
// archive), each after a confirmation.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Handler serves the page at / and its files under /console/.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fileServer := http.StripPrefix("/console/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		fileServer.ServeHTTP(w, r)
	})
}
