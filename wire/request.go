package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"floe/topicname"
)

// ErrBadRequest: a request does not follow the protocol. The reply is
// "ERR <reason>" and nothing changes. Its text carries no package prefix:
// clients read it in the reply ("ERR bad request: ...").
var ErrBadRequest = errors.New("bad request")

// ErrUnauthorized: the request, or the connection, lacks the credentials it needs
// (no or an unknown token, a role too weak, a node outside the cluster). The reply is
// "ERR unauthorized: <reason>"; the reason never repeats a credential.
var ErrUnauthorized = errors.New("unauthorized")

// Request is one parsed client request.
type Request struct {
	Cmd   string // REGISTER, PUT, PUTOFF, PUTBATCH, GET, STATE, METRICS, READ, TAIL, AUTH
	Topic string
	// Payloads: one for PUT and PUTOFF, one or more for PUTBATCH.
	Payloads [][]byte
	Offset   uint64 // READ, TAIL
	// Max: READ and TAIL, at most this many entries (1-MaxReadMax); GET, 0 for the
	// Walrus form (one entry, "OK <payload>") and 1-MaxReadMax for floe's batch form
	// (up to Max entries in READ's reply format).
	Max    int
	WaitMS int // TAIL
	// Token: AUTH's credential. It is a secret: never print it, nor a Request
	// that holds one.
	Token string
}

// Read limits.
const (
	DefaultReadMax = 100
	MaxReadMax     = 10000
	MaxTailWaitMS  = 60000
)

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, args...)...)
}

// ParseRequest parses one request frame (see the package doc): the request is UTF-8
// text, trailing whitespace is trimmed, words are split on single spaces, and a PUT
// payload is everything after "PUT <topic> ". PUTBATCH is the one binary-safe request:
// its first line is text, the rest is [u32 length][payload] records. The payloads
// may share frame's memory: the caller hands frame over and must not reuse it.
func ParseRequest(frame []byte) (Request, error) {
	if len(frame) == 0 {
		return Request{}, badf("empty request")
	}
	if bytes.HasPrefix(frame, []byte("PUTBATCH ")) {
		nl := bytes.IndexByte(frame, '\n')
		if nl < 0 {
			return Request{}, badf("PUTBATCH needs a header line ending in \\n")
		}
		head := frame[:nl]
		if !utf8.Valid(head) {
			return Request{}, badf("invalid utf-8")
		}
		topic := string(bytes.TrimRight(head[len("PUTBATCH "):], " \t\r"))
		if err := topicname.Validate(topic); err != nil {
			return Request{}, err
		}
		payloads, err := DecodeBatchBody(frame[nl+1:])
		if err != nil {
			return Request{}, badf("%v", err)
		}
		return Request{Cmd: "PUTBATCH", Topic: topic, Payloads: payloads}, nil
	}
	if !utf8.Valid(frame) {
		return Request{}, badf("invalid utf-8")
	}
	if r, ok, err := parsePut(frame); ok {
		return r, err
	}
	return parseText(frame)
}

// parseText parses a text request (valid UTF-8), PUT and PUTOFF included.
func parseText(frame []byte) (Request, error) {
	line := string(bytes.TrimRight(frame, " \t\r\n\v\f"))
	if line == "" {
		return Request{}, badf("empty request")
	}
	cmd, rest, _ := cut(line)
	switch cmd {
	case "PUT", "PUTOFF":
		topic, payload, ok := cut(rest)
		if topic == "" {
			return Request{}, badf("%s needs a topic and a payload", cmd)
		}
		if err := topicname.Validate(topic); err != nil {
			return Request{}, err
		}
		if !ok || payload == "" {
			return Request{}, badf("%s needs a payload", cmd)
		}
		return Request{Cmd: cmd, Topic: topic, Payloads: [][]byte{[]byte(payload)}}, nil
	case "GET":
		return parseGet(rest)
	case "REGISTER", "STATE":
		args := split(rest)
		if len(args) != 1 {
			return Request{}, badf("%s takes a topic: %s <topic>", cmd, cmd)
		}
		if err := topicname.Validate(args[0]); err != nil {
			return Request{}, err
		}
		return Request{Cmd: cmd, Topic: args[0]}, nil
	case "AUTH":
		// The token is never quoted back: an error names only what is wrong.
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return Request{}, badf("AUTH takes one token: AUTH <token>")
		}
		return Request{Cmd: cmd, Token: rest}, nil
	case "METRICS":
		if rest != "" {
			return Request{}, badf("METRICS takes no arguments")
		}
		return Request{Cmd: cmd}, nil
	case "READ", "TAIL":
		args := split(rest)
		maxArgs := 3
		if cmd == "TAIL" {
			maxArgs = 4
		}
		if len(args) < 2 || len(args) > maxArgs {
			return Request{}, badf("usage: READ <topic> <offset> [max] | TAIL <topic> <offset> [max] [wait_ms]")
		}
		if err := topicname.Validate(args[0]); err != nil {
			return Request{}, err
		}
		r := Request{Cmd: cmd, Topic: args[0], Max: DefaultReadMax}
		off, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil {
			return Request{}, badf("offset %q is not a number", args[1])
		}
		r.Offset = off
		if len(args) >= 3 {
			m, err := strconv.Atoi(args[2])
			if err != nil || m < 1 || m > MaxReadMax {
				return Request{}, badf("max %q must be 1-%d", args[2], MaxReadMax)
			}
			r.Max = m
		}
		if cmd == "TAIL" {
			r.WaitMS = 1000
			if len(args) == 4 {
				w, err := strconv.Atoi(args[3])
				if err != nil || w < 0 || w > MaxTailWaitMS {
					return Request{}, badf("wait_ms %q must be 0-%d", args[3], MaxTailWaitMS)
				}
				r.WaitMS = w
			}
		}
		return r, nil
	default:
		if len(cmd) >= 4 && strings.EqualFold(cmd[:4], "AUTH") {
			// Never quote what may hold a token ("AUTH\t<token>" is one word).
			return Request{}, badf("unknown command: AUTH takes one token after one space: AUTH <token>")
		}
		return Request{}, badf("unknown command %q", truncate(cmd, 32))
	}
}

// parseGet parses the arguments of GET: "<topic>" (Walrus's form) or "<topic> <max>"
// (floe's batch form).
func parseGet(rest string) (Request, error) {
	args := split(rest)
	if len(args) < 1 || len(args) > 2 {
		return Request{}, badf("usage: GET <topic> [max]")
	}
	if err := topicname.Validate(args[0]); err != nil {
		return Request{}, err
	}
	r := Request{Cmd: "GET", Topic: args[0]}
	if len(args) == 2 {
		m, err := strconv.Atoi(args[1])
		if err != nil || m < 1 || m > MaxReadMax {
			return Request{}, badf("max %q must be 1-%d", args[1], MaxReadMax)
		}
		r.Max = m
	}
	return r, nil
}

// parsePut parses a PUT or PUTOFF request (ok is false for any other), the one
// request on the hot path: its payload is a slice of frame, not a copy (the caller
// hands over frame), and only the topic name is copied. frame is valid UTF-8.
func parsePut(frame []byte) (r Request, ok bool, err error) {
	var cmd string
	switch {
	case bytes.HasPrefix(frame, []byte("PUT ")):
		cmd = "PUT"
	case bytes.HasPrefix(frame, []byte("PUTOFF ")):
		cmd = "PUTOFF"
	default:
		return Request{}, false, nil
	}
	rest := bytes.TrimRight(frame[len(cmd)+1:], " \t\r\n\v\f")
	topic, payload, found := bytes.Cut(rest, []byte(" "))
	if len(topic) == 0 {
		return Request{}, true, badf("%s needs a topic and a payload", cmd)
	}
	name := string(topic)
	if err := topicname.Validate(name); err != nil {
		return Request{}, true, err
	}
	if !found || len(payload) == 0 {
		return Request{}, true, badf("%s needs a payload", cmd)
	}
	return Request{Cmd: cmd, Topic: name, Payloads: [][]byte{payload[:len(payload):len(payload)]}}, true, nil
}

// cut splits s at the first single space.
func cut(s string) (before, after string, found bool) { return strings.Cut(s, " ") }

// split splits on single spaces; an empty string has no words.
func split(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for {
		w, rest, ok := cut(s)
		out = append(out, w)
		if !ok {
			return out
		}
		s = rest
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
