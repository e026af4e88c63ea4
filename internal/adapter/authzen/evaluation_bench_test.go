package authzen_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/verdictpdp/verdict/internal/adapter/authzen"
	"github.com/verdictpdp/verdict/internal/pipeline"
)

// BenchmarkEvaluation measures the AuthZEN hot path in-process, from the
// request bytes to the response bytes (parse, cache key, Rego evaluation
// of the Todo bundle or cache hit, audit off, JSON answer): first with
// every request new to the cache (the todo's ownerID changes), then with
// the same request answered by the cache; one evaluation, then
// evaluations requests of n items.
func BenchmarkEvaluation(b *testing.B) {
	e := newEngine(b, readTodo(b), true)
	h := authzen.NewServer(pipeline.New(e, pipeline.Options{}), authzen.Options{MaxEvaluations: 1000}).Handler()
	serve := func(b *testing.B, path string, body []byte) {
		b.Helper()
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
		}
	}
	// item is one evaluation of Morty updating a todo owned by owner.
	item := func(dst []byte, owner int) []byte {
		dst = append(dst, `{"subject":{"type":"user","id":"`+morty+`"},"action":{"name":"can_update_todo"},`+
			`"resource":{"type":"todo","id":"7240d0db-8ff0-41ec-98b2-34a096273b91","properties":{"ownerID":"owner-`...)
		dst = strconv.AppendInt(dst, int64(owner), 10)
		return append(dst, `@the-citadel.com"}}}`...)
	}
	batch := func(dst []byte, n, first int) []byte {
		dst = append(dst, `{"evaluations":[`...)
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = item(dst, first+i)
		}
		return append(dst, "]}"...)
	}
	// warm sends body until the cache has its decisions (it inserts in
	// the background).
	warm := func(b *testing.B, path string, body []byte) {
		b.Helper()
		for range 5 {
			serve(b, path, body)
			time.Sleep(20 * time.Millisecond)
		}
	}
	owner := 0
	var buf []byte
	b.Run("one/miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			owner++
			buf = item(buf[:0], owner)
			serve(b, authzen.PathEvaluation, buf)
		}
	})
	b.Run("one/hit", func(b *testing.B) {
		body := item(nil, -1)
		warm(b, authzen.PathEvaluation, body)
		b.ReportAllocs()
		for b.Loop() {
			serve(b, authzen.PathEvaluation, body)
		}
	})
	for _, n := range []int{10, 100} {
		b.Run("batch/"+strconv.Itoa(n)+"/miss", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = batch(buf[:0], n, owner)
				owner += n
				serve(b, authzen.PathEvaluations, buf)
			}
		})
		b.Run("batch/"+strconv.Itoa(n)+"/hit", func(b *testing.B) {
			body := batch(nil, n, -n-1)
			warm(b, authzen.PathEvaluations, body)
			b.ReportAllocs()
			for b.Loop() {
				serve(b, authzen.PathEvaluations, body)
			}
		})
	}
}
