package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"floe/topicname"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    Request
		wantErr error
	}{
		{"register", "REGISTER logs", Request{Cmd: "REGISTER", Topic: "logs"}, nil},
		{"trailing whitespace trimmed", "REGISTER logs \r\n", Request{Cmd: "REGISTER", Topic: "logs"}, nil},
		{"put keeps inner spaces", "PUT logs hello  big world", Request{Cmd: "PUT", Topic: "logs", Payloads: [][]byte{[]byte("hello  big world")}}, nil},
		{"put trims trailing", "PUT logs x  ", Request{Cmd: "PUT", Topic: "logs", Payloads: [][]byte{[]byte("x")}}, nil},
		{"putoff", "PUTOFF logs {\"a\": 1}", Request{Cmd: "PUTOFF", Topic: "logs", Payloads: [][]byte{[]byte(`{"a": 1}`)}}, nil},
		{"get", "GET logs", Request{Cmd: "GET", Topic: "logs"}, nil},
		{"get max", "GET logs 50", Request{Cmd: "GET", Topic: "logs", Max: 50}, nil},
		{"get max 1", "GET logs 1", Request{Cmd: "GET", Topic: "logs", Max: 1}, nil},
		{"get max trailing space", "GET logs 7 \r\n", Request{Cmd: "GET", Topic: "logs", Max: 7}, nil},
		{"get nothing", "GET", Request{}, ErrBadRequest},
		{"get zero max", "GET logs 0", Request{}, ErrBadRequest},
		{"get huge max", "GET logs 10001", Request{}, ErrBadRequest},
		{"get negative max", "GET logs -1", Request{}, ErrBadRequest},
		{"get max not a number", "GET logs x", Request{}, ErrBadRequest},
		{"get three words", "GET logs 1 2", Request{}, ErrBadRequest},
		{"get bad topic", "GET ../x 3", Request{}, topicname.ErrInvalid},
		{"state", "STATE logs", Request{Cmd: "STATE", Topic: "logs"}, nil},
		{"metrics", "METRICS", Request{Cmd: "METRICS"}, nil},
		{"read default max", "READ logs 7", Request{Cmd: "READ", Topic: "logs", Offset: 7, Max: DefaultReadMax}, nil},
		{"read max", "READ logs 7 3", Request{Cmd: "READ", Topic: "logs", Offset: 7, Max: 3}, nil},
		{"tail", "TAIL logs 0 5 250", Request{Cmd: "TAIL", Topic: "logs", Offset: 0, Max: 5, WaitMS: 250}, nil},
		{"unknown command", "FROB logs", Request{}, ErrBadRequest},
		{"auth with a tab", "AUTH\tsecret-token", Request{}, ErrBadRequest},
		{"auth without a token", "AUTH", Request{}, ErrBadRequest},
		{"auth with two words", "AUTH a b", Request{}, ErrBadRequest},
		{"auth", "AUTH tok", Request{Cmd: "AUTH", Token: "tok"}, nil},
		{"lower case is unknown", "put logs x", Request{}, ErrBadRequest},
		{"put no payload", "PUT logs", Request{}, ErrBadRequest},
		{"put only spaces", "PUT logs    ", Request{}, ErrBadRequest},
		{"put nothing", "PUT", Request{}, ErrBadRequest},
		{"register nothing", "REGISTER", Request{}, ErrBadRequest},
		{"register two words", "REGISTER a b", Request{}, ErrBadRequest},
		{"double space", "REGISTER  logs", Request{}, ErrBadTopicOrRequest},
		{"bad topic dots", "REGISTER ../x", Request{}, topicname.ErrInvalid},
		{"bad topic dot", "REGISTER .", Request{}, topicname.ErrInvalid},
		{"bad topic slash", "PUT a/b x", Request{}, topicname.ErrInvalid},
		{"long topic", "REGISTER " + strings.Repeat("t", 250), Request{}, topicname.ErrInvalid},
		{"metrics args", "METRICS now", Request{}, ErrBadRequest},
		{"read bad offset", "READ logs -1", Request{}, ErrBadRequest},
		{"read zero max", "READ logs 0 0", Request{}, ErrBadRequest},
		{"read huge max", "READ logs 0 100000", Request{}, ErrBadRequest},
		{"empty", "", Request{}, ErrBadRequest},
		{"blank", "   ", Request{}, ErrBadRequest},
		{"invalid utf8", "PUT logs \xff\xfe", Request{}, ErrBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tc.in))
			if tc.wantErr != nil {
				if tc.wantErr == ErrBadTopicOrRequest {
					if !errors.Is(err, ErrBadRequest) && !errors.Is(err, topicname.ErrInvalid) {
						t.Fatalf("got %v, want a bad request or bad topic", err)
					}
					return
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %+v, %v; want error %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Cmd != tc.want.Cmd || got.Topic != tc.want.Topic || got.Offset != tc.want.Offset ||
				got.Max != tc.want.Max || got.WaitMS != tc.want.WaitMS || !equalPayloads(got.Payloads, tc.want.Payloads) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// ErrBadTopicOrRequest marks cases where either refusal is right.
var ErrBadTopicOrRequest = errors.New("bad topic or request")

func equalPayloads(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestParsePutBatchIsBinarySafe(t *testing.T) {
	payloads := [][]byte{{0, 1, 2, 0xff}, []byte("text with\nnewline "), {0xfe}}
	got, err := ParseRequest(EncodeBatch("bin", payloads))
	if err != nil {
		t.Fatal(err)
	}
	if got.Cmd != "PUTBATCH" || got.Topic != "bin" || !equalPayloads(got.Payloads, payloads) {
		t.Fatalf("got %+v", got)
	}
	for name, in := range map[string][]byte{
		"no header end":  []byte("PUTBATCH bin"),
		"empty batch":    []byte("PUTBATCH bin\n"),
		"truncated":      append([]byte("PUTBATCH bin\n"), 9, 0, 0, 0, 'x'),
		"empty record":   append([]byte("PUTBATCH bin\n"), 0, 0, 0, 0),
		"bad topic":      EncodeBatch("../x", payloads),
		"bad utf8 topic": append([]byte("PUTBATCH \xff\n"), 1, 0, 0, 0, 'x'),
	} {
		if _, err := ParseRequest(in); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"REGISTER t", "PUT t hello world", "GET t", "GET t 10000", "GET t 0", "GET t 1 ", "STATE t", "METRICS",
		"READ t 0 10", "TAIL t 5 1 100", "PUTOFF t x", "PUT ../x y", "\xff"} {
		f.Add([]byte(s))
	}
	f.Add(EncodeBatch("t", [][]byte{{1, 2}, {3}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		// Whatever parses is well-formed: a valid topic (but for METRICS) and payloads
		// that are non-empty.
		if r.Cmd != "METRICS" {
			if err := topicname.Validate(r.Topic); err != nil {
				t.Fatalf("parsed %q with invalid topic %q", b, r.Topic)
			}
		}
		for _, p := range r.Payloads {
			if len(p) == 0 {
				t.Fatalf("parsed %q with an empty payload", b)
			}
		}
		if (r.Cmd == "READ" || r.Cmd == "TAIL") && (r.Max < 1 || r.Max > MaxReadMax) {
			t.Fatalf("parsed %q with max %d", b, r.Max)
		}
		if r.Cmd == "GET" && (r.Max < 0 || r.Max > MaxReadMax) {
			t.Fatalf("parsed %q with max %d", b, r.Max)
		}
	})
}

// FuzzParsePutMatchesText pins the PUT fast path (a slice of the frame, no copy) to
// the general text parser: the same request, or an error from both.
func FuzzParsePutMatchesText(f *testing.F) {
	for _, s := range []string{"PUT t x", "PUT t  a b ", "PUTOFF t x\n", "PUT  t x", "PUT t", "PUT ", "PUT t \t", "PUT ../x y"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return
		}
		fast, ok, ferr := parsePut(b)
		if !ok {
			return
		}
		slow, serr := parseText(b)
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Fatalf("%q: fast path error %v, text parser error %v", b, ferr, serr)
		}
		if ferr == nil && (fast.Cmd != slow.Cmd || fast.Topic != slow.Topic || len(fast.Payloads) != 1 ||
			len(slow.Payloads) != 1 || !bytes.Equal(fast.Payloads[0], slow.Payloads[0])) {
			t.Fatalf("%q: fast path %+v, text parser %+v", b, fast, slow)
		}
	})
}

// TestAuthTokenNeverQuoted: no parse error of an AUTH request repeats its token.
func TestAuthTokenNeverQuoted(t *testing.T) {
	for _, frame := range []string{"AUTH\tsecret-token", "AUTH secret-token extra", "auth\tsecret-token", "AUTHsecret-token"} {
		_, err := ParseRequest([]byte(frame))
		if err == nil || strings.Contains(err.Error(), "secret-token") {
			t.Errorf("%q: %v, want an error that does not quote the token", frame, err)
		}
	}
}
