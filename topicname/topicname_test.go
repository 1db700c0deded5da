package topicname

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"orders.v1_eu-west", true}, {"A-b_c.d", true}, {"...", true},
		{strings.Repeat("x", MaxLen), true},
		{"", false}, {".", false}, {"..", false}, {"../x", false}, {"../escape", false},
		{"a/b", false}, {"a b", false}, {"sp ace", false}, {"é", false}, {"ünï", false},
		{"a\x00", false}, {"a\x00b", false}, {strings.Repeat("x", MaxLen+1), false},
	} {
		err := Validate(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%q) error %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}

// TestErrorText pins the reason a client reads: the wire and HTTP layers send
// the error text as it is, and clients and scripts match on its start.
func TestErrorText(t *testing.T) {
	err := Validate("../x")
	if got, want := err.Error(), `invalid topic name: "../x": character '/' at 2 (allowed: A-Z a-z 0-9 . _ -)`; got != want {
		t.Errorf("Validate(\"../x\") = %q, want %q", got, want)
	}
}
