package sse_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/verdictpdp/verdict/internal/gateway/sse"
)

// readAll reads every event of r and the error that ended the stream.
func readAll(r *sse.Reader) ([]sse.Event, error) {
	var evs []sse.Event
	for {
		ev, err := r.Next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
}

// show formats events readably, data as quoted text.
func show(evs ...sse.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "{ID:%q HasID:%v Type:%q Data:%q Retry:%d}", ev.ID, ev.HasID, ev.Type, ev.Data, ev.Retry)
	}
	return "[" + b.String() + "]"
}

func data(s string) sse.Event { return sse.Event{Data: []byte(s)} }

func TestReader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want []sse.Event
		err  error // io.EOF unless set
	}{
		{name: "empty", in: ""},
		{name: "one", in: "data: {}\n\n", want: []sse.Event{data("{}")}},
		{name: "two", in: "data: a\n\ndata: b\n\n", want: []sse.Event{data("a"), data("b")}},
		{name: "multi-line data", in: "data: a\ndata:\ndata:  b\n\n", want: []sse.Event{data("a\n\n b")}},
		{name: "no space", in: "data:a\n\n", want: []sse.Event{data("a")}},
		{name: "no colon", in: "data\ndata\n\n", want: []sse.Event{data("\n")}},
		{name: "empty data skipped", in: "data:\n\ndata: x\n\n", want: []sse.Event{data("x")}},
		{name: "CRLF", in: "data: a\r\ndata: b\r\n\r\n", want: []sse.Event{data("a\nb")}},
		{name: "CR", in: "data: a\rdata: b\r\rdata: c\r\r", want: []sse.Event{data("a\nb"), data("c")}},
		{name: "mixed endings", in: "data: a\r\ndata: b\rdata: c\n\r\n", want: []sse.Event{data("a\nb\nc")}},
		{name: "CR then LF in next event", in: "data: a\r\r\ndata: b\n\n", want: []sse.Event{data("a"), data("b")}},
		{name: "BOM", in: "\xEF\xBB\xBFdata: a\n\n", want: []sse.Event{data("a")}},
		{name: "BOM only once", in: "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", want: []sse.Event{data("b")}},
		{name: "BOM alone", in: "\xEF\xBB\xBF"},
		{name: "comments", in: ": hi\ndata: a\n: mid\ndata: b\n\n:bye\n\n", want: []sse.Event{data("a\nb")}},
		{name: "keep-alives between events", in: ":\n\n: ping\n\ndata: a\n\n: ping\n\n: ping\n\ndata: b\n\n", want: []sse.Event{data("a"), data("b")}},
		{
			name: "fields",
			in:   "id: 7\nevent: message\nretry: 2500\ndata: {}\n\n",
			want: []sse.Event{{ID: "7", HasID: true, Type: "message", Data: []byte("{}"), Retry: 2500}},
		},
		{name: "last id wins", in: "id: 1\nid: 2\ndata: x\n\n", want: []sse.Event{{ID: "2", HasID: true, Data: []byte("x")}}},
		{name: "empty id", in: "id\ndata: x\n\n", want: []sse.Event{{HasID: true, Data: []byte("x")}}},
		{name: "id only (priming event)", in: "id: p1\ndata:\n\n", want: []sse.Event{{ID: "p1", HasID: true}}},
		{name: "id not carried over", in: "id: 1\ndata: a\n\ndata: b\n\n", want: []sse.Event{{ID: "1", HasID: true, Data: []byte("a")}, data("b")}},
		{name: "id with NUL ignored", in: "id: 1\nid: a\x00b\ndata: x\n\n", want: []sse.Event{{ID: "1", HasID: true, Data: []byte("x")}}},
		{name: "only id with NUL skipped", in: "id: a\x00\ndata:\n\n"},
		{name: "retry only", in: "retry: 1000\n\n", want: []sse.Event{{Retry: 1000}}},
		{name: "bad retry ignored", in: "retry: 5\nretry: 1x\nretry: -1\nretry:  7\nretry: 9999999999\ndata: a\n\n", want: []sse.Event{{Data: []byte("a"), Retry: 5}}},
		{name: "type only skipped", in: "event: ping\n\ndata: a\n\n", want: []sse.Event{data("a")}},
		{name: "unknown fields ignored", in: "foo: bar\nData: x\n: c\ndata: a\n\n", want: []sse.Event{data("a")}},
		{name: "NUL in data", in: "data: a\x00b\n\n", want: []sse.Event{data("a\x00b")}},
		{name: "truncated mid-event", in: "data: a\n\ndata: b\n", want: []sse.Event{data("a")}, err: sse.ErrTruncated},
		{name: "truncated mid-line", in: "data: a\n\ndata: b", want: []sse.Event{data("a")}, err: sse.ErrTruncated},
		{name: "truncated after CR", in: "data: b\r", err: sse.ErrTruncated},
		{name: "truncated ignored field", in: "foo\n", err: sse.ErrTruncated},
		{name: "truncated skipped event", in: "event: x\n", err: sse.ErrTruncated},
		{name: "comment at end", in: "data: a\n\n: bye\n", want: []sse.Event{data("a")}},
		{name: "unterminated comment at end", in: "data: a\n\n: bye", want: []sse.Event{data("a")}},
		{name: "at the limit", in: "id: 12\nevent: 34\ndata: 56\ndata: 78\n\n", max: 9, want: []sse.Event{{ID: "12", HasID: true, Type: "34", Data: []byte("56\n78")}}},
		{name: "over the limit", in: "id: 12\nevent: 34\ndata: 56\ndata: 789\n\n", max: 9, err: sse.ErrTooLarge},
		{name: "over the limit by id", in: "data: 1234567\nid: 123\n\n", max: 9, err: sse.ErrTooLarge},
		{name: "over the limit by type", in: "data: 1234567\nevent: 123\n\n", max: 9, err: sse.ErrTooLarge},
		{name: "limit is per event", in: "data: 123456789\n\ndata: 123456789\n\n", max: 9, want: []sse.Event{data("123456789"), data("123456789")}},
		{name: "long comment line", in: ": " + strings.Repeat("x", 30) + "\ndata: a\n\n", max: 9, err: sse.ErrTooLarge},
		{name: "comments do not count", in: ": 12345678\n: 12345678\ndata: 12345678\n\n" + strings.Repeat(": 12345678\n\n", 10) + "data: 1\n\n", max: 9, want: []sse.Event{data("12345678"), data("1")}},
		{name: "events after an error", in: "data: 1234567890\n\ndata: a\n\n", max: 9, err: sse.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantErr := tc.err
			if wantErr == nil {
				wantErr = io.EOF
			}
			for _, split := range []struct {
				name string
				r    func(io.Reader) io.Reader
			}{
				{"whole", func(r io.Reader) io.Reader { return r }},
				{"one byte", iotest.OneByteReader},
				{"half", iotest.HalfReader},
			} {
				r := sse.NewReader(split.r(strings.NewReader(tc.in)), tc.max)
				got, err := readAll(r)
				if !errors.Is(err, wantErr) {
					t.Fatalf("%s: error %v, want %v", split.name, err, wantErr)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("%s: events\n%s\nwant\n%s", split.name, show(got...), show(tc.want...))
				}
				if _, again := r.Next(); !errors.Is(again, err) {
					t.Fatalf("%s: error after the end %v, want %v again", split.name, again, err)
				}
			}
		})
	}
}

func TestErrTruncatedWrapsUnexpectedEOF(t *testing.T) {
	t.Parallel()
	_, err := sse.NewReader(strings.NewReader("data: a\n"), 0).Next()
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, sse.ErrTruncated) {
		t.Fatalf("error %v, want ErrTruncated wrapping io.ErrUnexpectedEOF", err)
	}
}

func TestReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	r := sse.NewReader(io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom)), 0)
	got, err := readAll(r)
	if !errors.Is(err, boom) || len(got) != 1 {
		t.Fatalf("events %s, error %v; want one event and boom", show(got...), err)
	}
}

// endless is a stream that never ends, counting what it hands out.
type endless struct {
	prefix string
	fill   byte
	n      int
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	for i := range p[n:] {
		p[n+i] = e.fill
	}
	e.n += len(p)
	return len(p), nil
}

func TestTooLargeIsBounded(t *testing.T) {
	t.Parallel()
	const limit = 100 << 10
	const readAhead = 64 << 10 // the largest bufio buffer NewReader makes
	lines := strings.Repeat("data: 1234567\n", limit/8+1)
	for _, tc := range []struct {
		name  string
		src   *endless
		bound int
	}{
		{"endless line", &endless{prefix: "data: ", fill: 'a'}, limit + readAhead + 64},
		{"endless comment", &endless{prefix: ":", fill: 'a'}, limit + readAhead + 64},
		{"endless id", &endless{prefix: "id: ", fill: 'a'}, limit + readAhead + 64},
		{"many data lines", &endless{prefix: lines, fill: 'a'}, len(lines) + readAhead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := sse.NewReader(tc.src, limit).Next()
			if !errors.Is(err, sse.ErrTooLarge) {
				t.Fatalf("error %v, want ErrTooLarge", err)
			}
			if tc.src.n > tc.bound {
				t.Fatalf("read %d bytes before refusing, want at most %d", tc.src.n, tc.bound)
			}
			if strings.Contains(err.Error(), "aaa") || strings.Contains(err.Error(), "123") {
				t.Fatalf("error %q holds stream content", err)
			}
		})
	}
}

// TestTooLargeAllocations runs alone (not in parallel) so that the allocation counter is its own.
func TestTooLargeAllocations(t *testing.T) {
	const limit, runs = 256 << 10, 10
	in := "data: " + strings.Repeat("a", 4*limit) + "\n\n"
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := sse.NewReader(strings.NewReader(in), limit).Next(); !errors.Is(err, sse.ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 3*limit {
		t.Fatalf("allocated %d bytes to refuse an event over %d, want at most %d", per, limit, 3*limit)
	}
}

func TestLargeThenSmallEvents(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("b", 200<<10)
	in := "id: 1\ndata: " + big + "\n\nid: 2\ndata: small\n\ndata: " + big + "\n\n"
	got, err := readAll(sse.NewReader(iotest.HalfReader(strings.NewReader(in)), 300<<10))
	want := []sse.Event{{ID: "1", HasID: true, Data: []byte(big)}, {ID: "2", HasID: true, Data: []byte("small")}, data(big)}
	if !errors.Is(err, io.EOF) || !reflect.DeepEqual(got, want) {
		t.Fatalf("%d events, %v", len(got), err)
	}
}

func TestWriter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ev   sse.Event
		want string
	}{
		{"data", data("{}"), "data: {}\n\n"},
		{"lines", data("a\nb\r\nc\rd"), "data: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"trailing newline", data("a\n"), "data: a\ndata: \n\n"},
		{"newline only", data("\n"), "data: \ndata: \n\n"},
		{"CRLF only", data("\r\n"), "data: \ndata: \n\n"},
		{"all fields", sse.Event{ID: "1", HasID: true, Type: "message", Data: []byte("x"), Retry: 3000}, "id: 1\nevent: message\nretry: 3000\ndata: x\n\n"},
		{"empty id", sse.Event{HasID: true}, "id: \n\n"},
		{"id without HasID", sse.Event{ID: "9", Data: []byte("x")}, "id: 9\ndata: x\n\n"},
		{"leading space kept", data(" a"), "data:  a\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := sse.NewWriter(&buf).WriteEvent(tc.ev); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tc.want {
				t.Fatalf("wrote %q, want %q", buf.String(), tc.want)
			}
		})
	}
}

func TestWriterRefuses(t *testing.T) {
	t.Parallel()
	for _, ev := range []sse.Event{
		{ID: "a\nb"}, {ID: "a\rb"}, {ID: "a\x00b", HasID: true}, {Type: "a\nb"}, {Type: "\r"}, {Retry: -1},
	} {
		var buf bytes.Buffer
		w := sse.NewWriter(&buf)
		if err := w.WriteEvent(ev); !errors.Is(err, sse.ErrInvalidField) {
			t.Errorf("%s: error %v, want ErrInvalidField", show(ev), err)
		}
		if err := w.Comment("a\nb"); !errors.Is(err, sse.ErrInvalidField) {
			t.Errorf("comment: error %v, want ErrInvalidField", err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %q", show(ev), buf.String())
		}
	}
}

func TestComment(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := sse.NewWriter(&buf)
	for _, err := range []error{w.WriteEvent(data("a")), w.Comment("ping"), w.Comment(""), w.WriteEvent(data("b"))} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := "data: a\n\n: ping\n\n:\n\ndata: b\n\n"; buf.String() != want {
		t.Fatalf("wrote %q, want %q", buf.String(), want)
	}
	got, err := readAll(sse.NewReader(&buf, 0))
	if !errors.Is(err, io.EOF) || !reflect.DeepEqual(got, []sse.Event{data("a"), data("b")}) {
		t.Fatalf("read back %s, %v", show(got...), err)
	}
}

// flushCounter counts flushes, with Flush() error as bufio.Writer has it.
type flushCounter struct {
	bytes.Buffer
	flushes int
}

func (f *flushCounter) Flush() error { f.flushes++; return nil }

func TestWriterFlushes(t *testing.T) {
	t.Parallel()
	fc := &flushCounter{}
	w := sse.NewWriter(fc)
	_ = w.WriteEvent(data("a"))
	_ = w.Comment("x")
	if fc.flushes != 2 {
		t.Fatalf("%d flushes, want 2", fc.flushes)
	}

	rec := httptest.NewRecorder()
	if err := sse.NewWriter(rec).WriteEvent(data("a")); err != nil {
		t.Fatal(err)
	}
	if !rec.Flushed {
		t.Fatal("http.ResponseWriter not flushed")
	}

	// A wrapped ResponseWriter that hides Flush but unwraps.
	rec = httptest.NewRecorder()
	if err := sse.NewWriter(wrapped{rec}).WriteEvent(data("a")); err != nil {
		t.Fatal(err)
	}
	if !rec.Flushed {
		t.Fatal("wrapped http.ResponseWriter not flushed")
	}

	bw := bufio.NewWriterSize(io.Discard, 4096)
	if err := sse.NewWriter(bw).WriteEvent(data("a")); err != nil || bw.Buffered() != 0 {
		t.Fatalf("bufio.Writer: error %v, %d bytes left buffered", err, bw.Buffered())
	}
}

type wrapped struct{ *httptest.ResponseRecorder }

func (w wrapped) Unwrap() any { return w.ResponseRecorder }

func TestWriterConcurrent(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := sse.NewWriter(&buf)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				_ = w.WriteEvent(data("line one\nline two"))
				_ = w.Comment("ping")
			}
		})
	}
	wg.Wait()
	got, err := readAll(sse.NewReader(&buf, 0))
	if !errors.Is(err, io.EOF) || len(got) != 400 {
		t.Fatalf("%d events, %v; want 400", len(got), err)
	}
	for _, ev := range got {
		if string(ev.Data) != "line one\nline two" {
			t.Fatalf("interleaved event %q", ev.Data)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, d := range []string{
		"", "a", "\n", "\r", "\r\n", "\n\n", "\r\r", "\n\r", "a\rb", "a\r\nb", "a\n\rb", " lead", "  two", ":colon",
		"data: nested\n\nid: 5", "\x00\xff", "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}", "trail\r",
	} {
		for _, ev := range []sse.Event{
			{Data: []byte(d)},
			{ID: "id-1", HasID: true, Type: "message", Data: []byte(d), Retry: 10},
			{HasID: true, Type: " spaced ", Data: []byte(d)},
		} {
			var buf bytes.Buffer
			if err := sse.NewWriter(&buf).WriteEvent(ev); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(sse.NewReader(iotest.OneByteReader(&buf), 0))
			if !errors.Is(err, io.EOF) {
				t.Fatalf("%q: %v", d, err)
			}
			want := ev
			want.Data = []byte(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(d))
			if len(want.Data) == 0 {
				want.Data = nil
			}
			if len(want.Data) == 0 && !want.HasID && want.Retry == 0 {
				if len(got) != 0 {
					t.Fatalf("%q: read back %s, want nothing", d, show(got...))
				}
				continue
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
				t.Fatalf("%q: read back %s, want %s", d, show(got...), show(want))
			}
		}
	}
}
